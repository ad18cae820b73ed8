//! Enrollment: single-use tokens for identities an admin names, with which their clients
//! obtain their first credentials.
//!
//! A token is a secret for the identity's owner: only its digest (`enrollment_id`) is
//! stored, journaled before the answer gives the token out (and, with several frontends,
//! stored in the shared database too), so a token answered is never lost and a stored one
//! names nobody's secret.

use std::collections::{HashMap, HashSet};

use kt_protocol::api::{Enrollment, EnrollmentAnswer, EnrollmentRequest};
use kt_protocol::pop::enrollment_id;

use super::bad_identity;
use crate::app::AppState;
use crate::directory::Directory;
use crate::refusal::{Refusal, RefusalKind};
use crate::state::directory::LabelRow;
use crate::state::{State, StateError};
use crate::storage::{database_refusal, state_refusal};
use crate::tokens::generate_token;
use crate::unix_now;

/// Most identities in one enrollment request.
pub const MAX_ENROLLMENTS: usize = 100_000;
/// Default enrollment token lifetime: one day.
pub const DEFAULT_TOKEN_TTL: u64 = 86_400;
/// Enrollment token lifetimes allowed: one minute to 30 days.
pub const TOKEN_TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=2_592_000;

/// A whole number of seconds from a JSON number (`60` or `60.0`), if it is one.
fn whole_seconds(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        let value = number.as_f64()?;
        (value.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&value)).then_some(value as u64)
    })
}

/// Enrolls every identity of `request` (1 to [`MAX_ENROLLMENTS`], each allowed by the
/// identity policy for new enrollments, none revoked) with a fresh token valid for
/// `ttl_seconds` (in [`TOKEN_TTL_RANGE`]; [`DEFAULT_TOKEN_TTL`] if absent). All or nothing:
/// one refused identity refuses the request, and nothing is stored.
pub async fn enroll(
    app: &AppState,
    request: EnrollmentRequest,
) -> Result<EnrollmentAnswer, Refusal> {
    if request.identities.is_empty() || request.identities.len() > MAX_ENROLLMENTS {
        return Err(Refusal::bad_request(format!(
            "identities must list 1 to {MAX_ENROLLMENTS} identities"
        )));
    }
    let ttl = match &request.ttl_seconds {
        None => DEFAULT_TOKEN_TTL,
        Some(number) => whole_seconds(number).unwrap_or(0),
    };
    if !TOKEN_TTL_RANGE.contains(&ttl) {
        return Err(Refusal::bad_request(
            "ttl_seconds must be between 60 and 2592000",
        ));
    }
    for identity in &request.identities {
        app.identity_policy
            .check_new(identity)
            .map_err(|e| bad_identity(identity, e))?;
    }
    let expires_at = unix_now() + ttl;
    let mut enrollments = Vec::with_capacity(request.identities.len());
    let mut records = Vec::with_capacity(request.identities.len());
    for identity in request.identities {
        let token = generate_token().map_err(Refusal::failed)?;
        records.push((enrollment_id(&token).to_hex(), identity.clone(), expires_at));
        enrollments.push(Enrollment {
            identity,
            token,
            expires_at,
        });
    }
    let state = app.state.get()?;
    let directory = app.directory.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let labels = prepare_labels(&state, &directory, &records)?;
        let stored = state.add_prepared_enrollments(&records, &labels)?;
        Ok::<_, StateError>(stored.map(|journaled| (journaled, labels)))
    })
    .await
    .map_err(Refusal::failed)?
    // A storage fault refuses for now: nothing answered shows the enrollment (a journaled
    // record without its store record has tokens nobody was given), and a store that
    // failed is reopened by the sequencer.
    .map_err(state_refusal)?;
    let (journaled, labels) = match stored {
        Ok(stored) => stored,
        Err(identity) => {
            return Err(Refusal::new(
                RefusalKind::IdentityRevoked,
                format!("{identity} is revoked; an admin must enable it first"),
            ))
        }
    };
    if let Some(shared) = &app.shared_enrollments {
        // Every frontend must be able to redeem the tokens before they are given out.
        shared
            .add(&journaled, &labels)
            .await
            .map_err(database_refusal)?;
    }
    Ok(EnrollmentAnswer { enrollments })
}

/// The labels of the identities of `records` that were never logged, computed now (on every
/// core) so that their issuances need not: an enrollment request of many identities is an
/// admin's, made ahead, where an issuance is waited for by its client.
fn prepare_labels(
    state: &State,
    directory: &Directory,
    records: &[(String, String, u64)],
) -> Result<HashMap<String, LabelRow>, StateError> {
    // A store that takes no enrollment refuses before any of this work.
    if state.failed() || state.retired() {
        return Err(StateError::Unavailable);
    }
    let mut seen = HashSet::new();
    let mut unlogged: Vec<&str> = Vec::new();
    for (_, identity, _) in records {
        if seen.insert(identity.as_str()) && state.label_row(identity)?.is_none() {
            unlogged.push(identity);
        }
    }
    let labels = directory.compute_labels(&unlogged);
    Ok(unlogged
        .into_iter()
        .zip(labels)
        .map(|(identity, (label, proof))| (identity.to_owned(), LabelRow::new(&label, &proof)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::testing::{directory_log, directory_of, keys};
    use crate::state::test_ids::issue;

    #[test]
    fn labels_are_prepared_once_for_each_identity_never_logged() {
        let dir = tempfile::tempdir().unwrap();
        let state =
            State::open(&dir.path().join("state"), &dir.path().join("enrollments")).unwrap();
        let log = directory_log(&dir.path().join("log"), &[issue("a@b.co", "s1", "x")]);
        let keys = keys();
        let change_at = |i: u64| crate::directory::open_change(&keys, &log.entry(i).unwrap());
        state
            .catch_up(log.size(), change_at, |_| Ok([2; 32]))
            .unwrap();
        let directory = directory_of(&log);

        let records: Vec<(String, String, u64)> = ["a@b.co", "b@b.co", "b@b.co", "c@b.co"]
            .iter()
            .enumerate()
            .map(|(n, identity)| (format!("{n:064x}"), identity.to_string(), u64::MAX))
            .collect();
        let labels = prepare_labels(&state, &directory, &records).unwrap();
        // a@b.co is logged: its label row holds its label already.
        assert_eq!(labels.len(), 2);
        for identity in ["b@b.co", "c@b.co"] {
            let (label, proof) = keys.vrf().prove(identity);
            assert_eq!(labels[identity], LabelRow::new(&label, &proof));
        }
    }
}
