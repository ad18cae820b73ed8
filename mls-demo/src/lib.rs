//! MLS for real, with this AS as the Authentication Service: openmls groups whose members
//! validate each other's credentials through the AS and its key-transparency log before they
//! trust them.
//!
//! - [`validator`]: [`validator::AsValidator`], the check itself (signed checkpoint,
//!   consistent with and not older than the saved one, the identity's complete state proven
//!   in the directory under the VRF key, every credential under the CA, the key in the current
//!   set, status, validity, CRL).
//! - [`mls`]: openmls glue — an MLS identity from an AS credential, and the calls an
//!   application makes at each point openmls hands it a credential (KeyPackage before add,
//!   ratchet tree on join, commit sender and added members before merge).
//! - [`as_api`]: enrollment, issuance and rotation with proofs of possession, revocation, and
//!   the verification of their answers.
//! - [`https`]: a small HTTPS client pinned to one trust certificate.

pub mod as_api;
pub mod https;
pub mod mls;
pub mod validator;
