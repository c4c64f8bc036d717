//! Loading the Finance SDK and resolving its 17 functions.
//!
//! The library links OpenSSL, libcurl, protobuf and libstdc++ statically and exports about
//! 17,000 symbols. Opened with `RTLD_DEEPBIND` its own references bind to its own copies, not
//! to a libcrypto already in the process (the crash that took Odoo down); `RTLD_LOCAL` keeps its
//! symbols out of everyone else's way; `RTLD_NOW` makes a broken library fail here, at load,
//! rather than at its first call; `RTLD_NODELETE` keeps its code mapped after the last handle is
//! closed, because threads or thread-exit destructors of its static libcurl and OpenSSL may
//! still run it.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::buffers::OwnedSlice;
use super::handle::SdkHandle;
use crate::sdk::error::{check, SdkError, SdkOp};
use crate::sdk::guard;

/// Declares the symbol table once: the struct of function pointers, the list of names, and
/// the resolver, so that the three cannot drift apart.
macro_rules! finance_symbols {
    ($($name:ident: $ty:ty;)*) => {
        /// The library's functions, with the signatures of the official header (LP64, cdecl).
        #[allow(non_snake_case)]
        pub(super) struct Symbols {
            $(pub(super) $name: $ty,)*
        }

        /// The names of the 17 functions of the C API, in the header's order.
        pub const SYMBOL_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl Symbols {
            /// # Safety
            /// `library` must be the Finance SDK: the types above are taken on trust from its
            /// header, and calling through a pointer of the wrong type is undefined behaviour.
            unsafe fn resolve(library: &Library) -> Result<Self, &'static str> {
                Ok(Self {
                    $($name: *library
                        .get::<$ty>(concat!(stringify!($name), "\0").as_bytes())
                        .map_err(|_| stringify!($name))?,)*
                })
            }
        }
    };
}

finance_symbols! {
    NewSdk: unsafe extern "C" fn() -> *mut c_void;
    Init: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;
    GetChatData: unsafe extern "C" fn(
        *mut c_void, c_ulonglong, c_uint, *const c_char, *const c_char, c_int, *mut c_void,
    ) -> c_int;
    DecryptData: unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void) -> c_int;
    GetMediaData: unsafe extern "C" fn(
        *mut c_void, *const c_char, *const c_char, *const c_char, *const c_char, c_int, *mut c_void,
    ) -> c_int;
    DestroySdk: unsafe extern "C" fn(*mut c_void);
    NewSlice: unsafe extern "C" fn() -> *mut c_void;
    FreeSlice: unsafe extern "C" fn(*mut c_void);
    GetContentFromSlice: unsafe extern "C" fn(*mut c_void) -> *mut c_char;
    GetSliceLen: unsafe extern "C" fn(*mut c_void) -> c_int;
    NewMediaData: unsafe extern "C" fn() -> *mut c_void;
    FreeMediaData: unsafe extern "C" fn(*mut c_void);
    GetOutIndexBuf: unsafe extern "C" fn(*mut c_void) -> *mut c_char;
    GetData: unsafe extern "C" fn(*mut c_void) -> *mut c_char;
    GetIndexLen: unsafe extern "C" fn(*mut c_void) -> c_int;
    GetDataLen: unsafe extern "C" fn(*mut c_void) -> c_int;
    IsMediaDataFinish: unsafe extern "C" fn(*mut c_void) -> c_int;
}

/// Why [`FinanceSdk::load`] could not produce a usable library.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `dlopen` failed: no file at `path`, not a shared object, wrong architecture, or an
    /// unresolved dependency (`RTLD_NOW` reports it here).
    #[error("cannot load the Finance SDK from {path}: {source}")]
    Open {
        /// The path that was passed to `dlopen`.
        path: PathBuf,
        /// The loader's own message.
        source: libloading::Error,
    },
    /// The library opened but does not export one of the 17 functions, so it is some other
    /// library (or a different SDK version).
    #[error("{path} is not the Finance SDK: it lacks the symbol {symbol}")]
    MissingSymbol {
        /// The library that was opened.
        path: PathBuf,
        /// The first function name, from [`SYMBOL_NAMES`], that it lacks.
        symbol: &'static str,
    },
}

/// The loaded library with every function resolved. Share it with `Arc`; handles keep it alive.
pub struct FinanceSdk {
    // The pointers point into the library; they never leave this struct except as borrows
    // (`OwnedSlice<'lib>`) or behind an `Arc<FinanceSdk>` (`SdkHandle`), so they cannot outlive it.
    pub(super) fns: Symbols,
    path: PathBuf,
    _library: Library,
}

// `FinanceSdk` is Send and Sync without an `unsafe impl`: it holds plain function pointers and a
// `Library`, all of which are. Through `&FinanceSdk` many threads may call `DecryptData`, which
// `docs/SDK.md` (section 2) show to be stateless and thread-safe (16 threads x 3000 calls
// measured), and open handles (`NewSdk` + `Init`, which only store strings). The stateful calls
// go through `SdkHandle`, which is not Sync. The official sample runs one instance per thread
// concurrently, which is what a pool of handles does.

impl FinanceSdk {
    /// Opens the library at `path` and resolves all 17 functions.
    pub fn load(path: &Path) -> Result<Arc<Self>, LoadError> {
        let flags = RTLD_NOW | RTLD_LOCAL | libc::RTLD_DEEPBIND | libc::RTLD_NODELETE;
        // SAFETY: loading runs the library's initialisers. The Finance SDK's only touch its own
        // statically linked copies of OpenSSL/libstdc++ (DEEPBIND keeps them apart from ours).
        let library =
            unsafe { Library::open(Some(path), flags) }.map_err(|source| LoadError::Open {
                path: path.to_owned(),
                source,
            })?;
        // SAFETY: the library at `path` is taken to be the Finance SDK; the symbol types are
        // those of its header. A library that is not it fails here on a missing name.
        let fns =
            unsafe { Symbols::resolve(&library) }.map_err(|symbol| LoadError::MissingSymbol {
                path: path.to_owned(),
                symbol,
            })?;
        Ok(Arc::new(Self {
            fns,
            path: path.to_owned(),
            _library: library,
        }))
    }

    /// The path the library was loaded from, as given to [`FinanceSdk::load`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `NewSdk` + `Init` for one corp. The library stores the credentials without checking
    /// them: a wrong secret shows up later as 10001 from the first network call.
    pub fn open_handle(
        self: &Arc<Self>,
        corpid: &str,
        secret: &SecretString,
    ) -> Result<SdkHandle, SdkError> {
        let corpid_c = guard::c_id("corpid", corpid)?;
        let secret_c = Zeroizing::new(guard::c_id("secret", secret.expose_secret())?);
        SdkHandle::init(Arc::clone(self), &corpid_c, &secret_c)
    }

    /// `DecryptData(encrypt_key, encrypt_msg)`: the message's plaintext bytes (JSON).
    ///
    /// `encrypt_key` is the RSA-decrypted random key; it is wiped from our copy after the call.
    pub fn decrypt_data(
        &self,
        encrypt_key: &[u8],
        encrypt_msg: &[u8],
    ) -> Result<Vec<u8>, SdkError> {
        let (key, msg) = guard::decrypt_inputs(encrypt_key, encrypt_msg)?;
        let key = Zeroizing::new(key);
        let out = OwnedSlice::new(&self.fns, SdkOp::DecryptData)?;
        // SAFETY: both strings are NUL-terminated and outlive the call; `out` is a fresh slice
        // from NewSlice (never NULL here, so the success path cannot write through NULL); the
        // guard refused every input known to abort the library.
        let rc = unsafe { (self.fns.DecryptData)(key.as_ptr(), msg.as_ptr(), out.as_ptr()) };
        check(SdkOp::DecryptData, rc)?;
        Ok(out.to_vec())
    }
}
