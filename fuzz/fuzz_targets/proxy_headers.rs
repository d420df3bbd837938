//! What fronts send before and inside a request: a PROXY protocol header
//! (v1/v2) at the start of a connection, and a `tls.proxy` forwarded
//! certificate header. Neither parser may panic; the PROXY reader never
//! takes more than the header (the TLS handshake follows it in the same
//! stream), and a forwarded certificate is refused with one of the three
//! 400s or gives a hash identity.
#![no_main]

use kes_server::fuzzing::{forwarded_certificate, proxy_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let (read, taken) = proxy_header(data);
        assert!(taken <= data.len());
        match read {
            // The input ended inside the header: everything was read.
            None => assert_eq!(taken, data.len()),
            Some(Ok(_)) if data.starts_with(b"PROXY ") => {
                assert!(data[..taken].ends_with(b"\r\n"), "v1 ends at its CRLF");
                assert!(taken <= 107);
            }
            Some(Ok(_)) => {
                let len = usize::from(u16::from_be_bytes([data[14], data[15]]));
                assert_eq!(taken, 16 + len, "v2 takes exactly its length");
            }
            Some(Err(_)) => assert!(taken <= 16 + 2048),
        }
    } else {
        match forwarded_certificate(data) {
            Ok(identity) => assert!(identity.is_hash()),
            Err((status, message)) => {
                assert_eq!(status, 400);
                assert!(
                    [
                        "no client certificate is present",
                        "too many client certificates are present",
                        "invalid client certificate"
                    ]
                    .contains(&message.as_str()),
                    "{message}"
                );
            }
        }
    }
});
