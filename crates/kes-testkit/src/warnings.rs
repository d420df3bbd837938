//! Captures the warnings a future logs, to check what a key store says at
//! start-up (e.g. about a plain-HTTP endpoint).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tracing::instrument::WithSubscriber as _;
use tracing::{span, Event, Level, Metadata, Subscriber};

/// Collects the message of every WARN (or more severe) event of the key
/// store crate.
#[derive(Clone, Default)]
struct Capture {
    messages: Arc<Mutex<Vec<String>>>,
}

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Capture {
    // "Sometimes", never a cached "never": tests on other threads run
    // without a subscriber, and a callsite registered while none of them
    // cared would otherwise stay silent for this one.
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("kes_keystore") && *metadata.level() <= Level::WARN
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        self.messages.lock().unwrap().push(message);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Runs `future` and returns its output with the warnings it logged (on
/// its own task; tasks it spawns are not watched).
pub async fn warnings_of<F: Future>(future: F) -> (F::Output, Vec<String>) {
    let capture = Capture::default();
    let dispatch = tracing::Dispatch::new(capture.clone());
    // Callsites cache whether any subscriber wants them; make sure that
    // cache has seen this one before the future runs.
    tracing::callsite::rebuild_interest_cache();
    let output = future.with_subscriber(dispatch).await;
    let messages = capture.messages.lock().unwrap().clone();
    (output, messages)
}
