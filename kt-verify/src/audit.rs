//! The audit's rules for one entry, before the history rules.
//!
//! Guarantee of [`check_entry`]: it returns the entry only if its bytes are an entry of the
//! protocol in canonical form (`kt_protocol::entry::LogEntry::parse`) and, when a CA is
//! given, an issue or rotate entry's certificate is signed by that CA and says exactly what
//! the entry says (serial, key, validity, identity). The entry returned has its certificate
//! dropped: the history rules (`kt_protocol::history::check`, which the audit applies next,
//! in log order, over its index of the entries before) do not read it.

use kt_protocol::entry::{EntryBody, LogEntry};

use crate::credential::Ca;
use crate::entry::{view_of, EntryError};

/// Checks one entry (see the module guarantee). `ca` is `None` when certificate signatures
/// are not to be checked (`verifier-cli audit --skip-cert-signatures`).
pub fn check_entry(bytes: &[u8], ca: Option<&Ca>) -> Result<LogEntry, EntryError> {
    let mut entry = LogEntry::parse(bytes)?;
    if let Some(ca) = ca {
        if let Some(b) = view_of(&entry).binding() {
            b.check_certificate(ca)?;
        }
    }
    if let EntryBody::Issue { binding, .. } | EntryBody::Rotate { binding, .. } = &mut entry.body {
        binding.certificate = Vec::new();
    }
    Ok(entry)
}
