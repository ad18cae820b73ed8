//! Enrollments announced by the other frontends, taken in as they are made: a frontend that
//! gives out tokens announces their ids on the database's `as_enrollments` notification
//! channel (`pg_notify`, after the rows are committed); every other frontend listens, reads
//! the rows those ids name from the table, and takes them into its state
//! ([`State::import_enrollment`]), so that redeeming another frontend's token usually needs
//! no lookup in the database.
//!
//! **Only the table is trusted.** A notification carries ids, never records: anyone who may
//! connect can notify, while only the frontends write the table. An id the table does not
//! hold is ignored. A missed notification (a reconnection, a frontend started later) costs
//! nothing but a lookup at the token's redemption, as before.

use std::sync::Arc;

use tokio_postgres::{AsyncMessage, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{record_of, ANNOUNCEMENTS, FIND};
use crate::state::shared::SharedState;
use crate::state::State;

/// How long a listener waits before connecting again after its connection ended.
const RECONNECT_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Listens for the other frontends' announcements and takes their enrollments into `state`,
/// until the driver's runtime stops; `origin` is this frontend's own mark, whose
/// announcements are skipped.
pub(super) async fn listen(
    config: Config,
    tls: MakeRustlsConnect,
    origin: String,
    state: Arc<SharedState>,
) {
    loop {
        if let Err(error) = listen_once(&config, &tls, &origin, &state).await {
            tracing::debug!(%error, "listening for other frontends' enrollments");
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// One connection's worth of [`listen`]; returns when the connection ends.
async fn listen_once(
    config: &Config,
    tls: &MakeRustlsConnect,
    origin: &str,
    state: &Arc<SharedState>,
) -> Result<(), String> {
    let describe = |e: tokio_postgres::Error| kt_log::store::describe_postgres_error(&e);
    let (client, mut connection) = config.connect(tls.clone()).await.map_err(describe)?;
    let (notices, mut received) = tokio::sync::mpsc::unbounded_channel();
    // Drives the connection (the queries below too) and hands on its notifications.
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(notice) = message {
                if notices.send(notice.payload().to_owned()).is_err() {
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {ANNOUNCEMENTS}"))
        .await
        .map_err(describe)?;
    while let Some(payload) = received.recv().await {
        let Some((from, ids)) = payload.split_once(':') else {
            continue;
        };
        if from == origin {
            continue;
        }
        let ids: Vec<&str> = ids.split(',').filter(|id| !id.is_empty()).collect();
        let rows = client.query(FIND, &[&ids]).await.map_err(describe)?;
        let records = rows
            .iter()
            .filter_map(|row| record_of(row).ok())
            .collect::<Vec<_>>();
        let Ok(state) = state.get() else {
            continue; // The store is being reopened: these are looked up when redeemed.
        };
        // A few writes to the state's store per record, off the connections' thread.
        let _ = tokio::task::spawn_blocking(move || import_all(&state, &records)).await;
    }
    Ok(())
}

/// Takes `records` into `state`; one that fails is looked up again when its token is
/// redeemed.
fn import_all(state: &State, records: &[super::SharedEnrollment]) {
    for shared in records {
        if let Err(error) = state.import_enrollment(&shared.record, shared.label.as_ref()) {
            tracing::debug!(%error, "taking in another frontend's enrollment");
            return;
        }
    }
}
