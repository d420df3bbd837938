//! The data key wrapped by an AES-256 key in a PKCS#11 token (HSM):
//! AES-GCM inside the token, so the HSM key never leaves it.
//!
//! Loading the vendor's module is the one piece of unsafe code involved;
//! it stays inside the `cryptoki` crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use kes_keystore::config::{Pkcs11SealConfig, TokenRef};
use kes_keystore::{Error, KeyStore};
use zeroize::Zeroizing;

use crate::{KeyWrapper, SealedStore, DATA_KEY_LEN, WRAP_AAD};

const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;

/// The loaded modules of this process, by path, each initialized once.
/// PKCS#11 allows one initialization per process, and finalizing would
/// pull the module away from another store still using it (a reload opens
/// the new store before the old one closes), so modules stay loaded. The
/// lock also serializes the HSM calls: logins are per process and token,
/// and these calls happen at start-up only.
fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// An AES-256 key of a PKCS#11 token, found and checked.
pub struct Pkcs11Key {
    module: PathBuf,
    slot: Slot,
    token: String,
    pin: AuthPin,
    label: String,
    warnings: Vec<String>,
}

fn hsm_error(message: String, e: CkError) -> Error {
    Error::other(format!("{message}: {e}"))
}

/// The PKCS#11 return value of `e`, if it is one.
fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

impl Pkcs11Key {
    /// Loads the module, finds the token and the key and checks the key:
    /// each failure says which of them is wrong. Never says the PIN.
    /// Blocking.
    pub fn connect(config: &Pkcs11SealConfig) -> Result<Pkcs11Key, Error> {
        let module = &config.module;
        let mut modules = kes_core::sync::lock(modules());
        if !modules.contains_key(module) {
            if !module.exists() {
                return Err(Error::other(format!(
                    "hsm: the PKCS#11 module '{}' does not exist (keystore.fs.seal.pkcs11.module)",
                    module.display()
                )));
            }
            let ctx = Pkcs11::new(module).map_err(|e| {
                hsm_error(
                    format!(
                        "hsm: cannot load the PKCS#11 module '{}' (keystore.fs.seal.pkcs11.module)",
                        module.display()
                    ),
                    e,
                )
            })?;
            match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) => {}
                Err(e) if rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
                Err(e) => {
                    return Err(hsm_error(
                        format!(
                            "hsm: the PKCS#11 module '{}' fails to initialize",
                            module.display()
                        ),
                        e,
                    ))
                }
            }
            modules.insert(module.clone(), ctx);
        }
        let ctx = &modules[module];
        let slots = ctx.get_slots_with_initialized_token().map_err(|e| {
            hsm_error(
                format!("hsm: cannot list the tokens of '{}'", module.display()),
                e,
            )
        })?;
        let mut labels = Vec::new();
        let mut found = None;
        for slot in slots {
            let info = ctx.get_token_info(slot).map_err(|e| {
                hsm_error(
                    format!("hsm: cannot read the token in slot {}", slot.id()),
                    e,
                )
            })?;
            let label = info.label().trim_end().to_string();
            let matches = match &config.token {
                TokenRef::Label(want) => *want == label,
                TokenRef::Slot(id) => *id == slot.id(),
            };
            if matches && found.is_none() {
                found = Some((slot, label.clone()));
            }
            labels.push(format!("'{label}' (slot {})", slot.id()));
        }
        let Some((slot, token)) = found else {
            let wanted = match &config.token {
                TokenRef::Label(l) => format!("no token labelled '{l}'"),
                TokenRef::Slot(id) => format!("no token in slot {id}"),
            };
            return Err(Error::other(format!(
                "hsm: the PKCS#11 module '{}' has {wanted} (keystore.fs.seal.pkcs11); its tokens: {}",
                module.display(),
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(", ")
                }
            )));
        };
        let mut key = Pkcs11Key {
            module: module.clone(),
            slot,
            token,
            pin: AuthPin::new(config.pin.clone().into()),
            label: config.key.clone(),
            warnings: Vec::new(),
        };
        key.warnings = key.with_session(ctx, |session, key_handle, this| {
            this.check_key(session, key_handle)
        })?;
        Ok(key)
    }

    /// Opens a session, logs in, finds the key and runs `f`; logs out
    /// again, so that the next call (of this or another store) starts from
    /// a token without a login.
    fn with_session<T>(
        &self,
        ctx: &Pkcs11,
        f: impl FnOnce(&Session, ObjectHandle, &Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let token = &self.token;
        let session = ctx.open_ro_session(self.slot).map_err(|e| {
            hsm_error(
                format!("hsm: cannot open a session with token '{token}'"),
                e,
            )
        })?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) => {}
            Err(e) if rv(&e) == Some(RvError::UserAlreadyLoggedIn) => {}
            Err(e) if rv(&e) == Some(RvError::PinIncorrect) => {
                return Err(Error::other(format!(
                    "hsm: the PIN of token '{token}' is wrong (keystore.fs.seal.pkcs11.pin)"
                )))
            }
            Err(e) if rv(&e) == Some(RvError::PinLocked) => {
                return Err(Error::other(format!(
                    "hsm: the PIN of token '{token}' is locked after too many wrong PINs"
                )))
            }
            Err(e) => {
                return Err(hsm_error(
                    format!("hsm: login to token '{token}' failed"),
                    e,
                ))
            }
        }
        let result = self
            .find_key(&session)
            .and_then(|handle| f(&session, handle, self));
        let _ = session.logout();
        result
    }

    fn find_key(&self, session: &Session) -> Result<ObjectHandle, Error> {
        let (label, token) = (&self.label, &self.token);
        let handles = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(|e| hsm_error(format!("hsm: cannot search token '{token}'"), e))?;
        match handles.as_slice() {
            [] => Err(Error::other(format!(
                "hsm: token '{token}' has no secret key labelled '{label}' (keystore.fs.seal.pkcs11.key)"
            ))),
            [one] => Ok(*one),
            _ => Err(Error::other(format!(
                "hsm: token '{token}' has {} secret keys labelled '{label}': the seal key's label must be unique",
                handles.len()
            ))),
        }
    }

    /// Refuses a key that is not AES-256; warns about one that may leave
    /// the token.
    fn check_key(&self, session: &Session, handle: ObjectHandle) -> Result<Vec<String>, Error> {
        let (label, token) = (&self.label, &self.token);
        let attributes = session
            .get_attributes(
                handle,
                &[
                    AttributeType::KeyType,
                    AttributeType::ValueLen,
                    AttributeType::Extractable,
                ],
            )
            .map_err(|e| {
                hsm_error(
                    format!("hsm: cannot read the attributes of key '{label}'"),
                    e,
                )
            })?;
        let mut key_type = None;
        let mut len = None;
        let mut extractable = false;
        for attribute in attributes {
            match attribute {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::ValueLen(l) => len = Some(u64::from(l)),
                Attribute::Extractable(e) => extractable = e,
                _ => {}
            }
        }
        if key_type != Some(KeyType::AES) || len != Some(DATA_KEY_LEN as u64) {
            let what = match (key_type, len) {
                (Some(t), Some(l)) if t == KeyType::AES => format!("AES-{}", l * 8),
                (Some(t), _) => format!("a {t} key"),
                _ => "of unknown type".to_string(),
            };
            return Err(Error::other(format!(
                "hsm: key '{label}' of token '{token}' is not an AES-256 key (it is {what})"
            )));
        }
        let mut warnings = Vec::new();
        if extractable {
            warnings.push(format!(
                "hsm: key '{label}' of token '{token}' is extractable: it can be exported from \
                 the HSM, and with it every copy of the store opens; create the seal key \
                 non-extractable"
            ));
        }
        Ok(warnings)
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&Session, ObjectHandle) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let modules = kes_core::sync::lock(modules());
        let ctx = modules
            .get(&self.module)
            .expect("a connected key's module stays loaded");
        self.with_session(ctx, |session, handle, _| f(session, handle))
    }
}

impl KeyWrapper for Pkcs11Key {
    fn label(&self) -> &str {
        &self.label
    }

    fn wrap(&mut self, data_key: &[u8; DATA_KEY_LEN]) -> Result<Vec<u8>, Error> {
        let label = self.label.clone();
        self.run(|session, handle| {
            let mut iv = [0u8; IV_LEN];
            kes_core::random::fill(&mut iv);
            let params = GcmParams::new(&mut iv, WRAP_AAD, TAG_BITS.into())
                .map_err(|e| hsm_error("hsm: AES-GCM parameters".into(), e))?;
            let sealed = session
                .encrypt(&Mechanism::AesGcm(params), handle, data_key)
                .map_err(|e| hsm_error(format!("hsm: wrapping the data key with '{label}'"), e))?;
            let mut out = iv.to_vec();
            out.extend_from_slice(&sealed);
            Ok(out)
        })
    }

    fn unwrap(&mut self, wrapped: &[u8]) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, Error> {
        let label = self.label.clone();
        if wrapped.len() != IV_LEN + DATA_KEY_LEN + TAG_BITS as usize / 8 {
            return Err(Error::other(
                "hsm: the wrapped data key has the wrong length",
            ));
        }
        self.run(|session, handle| {
            let mut iv: [u8; IV_LEN] = wrapped[..IV_LEN].try_into().expect("length checked");
            let params = GcmParams::new(&mut iv, WRAP_AAD, TAG_BITS.into())
                .map_err(|e| hsm_error("hsm: AES-GCM parameters".into(), e))?;
            let plain = Zeroizing::new(
                session
                    .decrypt(&Mechanism::AesGcm(params), handle, &wrapped[IV_LEN..])
                    .map_err(|e| {
                        hsm_error(format!("hsm: unwrapping the data key with '{label}'"), e)
                    })?,
            );
            let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
            if plain.len() != DATA_KEY_LEN {
                return Err(Error::other(
                    "hsm: the unwrapped data key has the wrong length",
                ));
            }
            key.copy_from_slice(&plain);
            Ok(key)
        })
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

/// Opens the fs store `inner` of `dir` sealed under the PKCS#11 key of
/// `config` (see [`SealedStore::open`]). Runs the blocking HSM calls off
/// the async workers.
pub async fn open(
    dir: &Path,
    inner: Arc<dyn KeyStore>,
    config: &Pkcs11SealConfig,
) -> Result<SealedStore, Error> {
    let dir = dir.to_path_buf();
    let config = config.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let key = Pkcs11Key::connect(&config)?;
        SealedStore::open(&dir, inner, Box::new(key), &runtime)
    })
    .await
    .map_err(|e| Error::other(format!("seal: opening the store failed: {e}")))?
}

/// Rewraps the data key of the sealed store `dir` from the key of `from`
/// to the key of `to` (see [`crate::reseal`]). Blocking.
pub fn reseal(dir: &Path, from: &Pkcs11SealConfig, to: &Pkcs11SealConfig) -> Result<(), Error> {
    let from = Pkcs11Key::connect(from)?;
    let to = Pkcs11Key::connect(to)?;
    crate::reseal(dir, Box::new(from), Box::new(to))
}
