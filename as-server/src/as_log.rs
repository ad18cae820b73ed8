//! The log as the AS stores it: kt-log's `Log` over the store the configuration chose — the
//! durable `FileStore` in the data folder, or a `PostgresStore` that several frontends share.
//! Its own module so that the sequencer (its only writer in this process) and the readers
//! (directory, recovery, witnessing) name it without depending on one another.

use kt_log::log::Log;
use kt_log::store::LogStore;

/// The log type the AS runs on.
pub type AsLog = Log<Box<dyn LogStore>>;

/// Opens the store `choice` names: the `FileStore` in `log_folder`, or the PostgreSQL
/// database (its schema created or checked, see kt-log's `PostgresStore`). The URL is not
/// repeated in an error: it may hold a password.
pub fn open_store(
    choice: &crate::config::StoreChoice,
    log_folder: &std::path::Path,
) -> Result<Box<dyn LogStore>, String> {
    use crate::config::StoreChoice;
    match choice {
        StoreChoice::Embedded => kt_log::store::FileStore::open(log_folder)
            .map(|store| Box::new(store) as Box<dyn LogStore>)
            .map_err(|e| format!("log store: {e}")),
        StoreChoice::Postgres(url) => kt_log::store::PostgresStore::open(url)
            .map(|store| Box::new(store) as Box<dyn LogStore>)
            .map_err(|e| format!("log store on PostgreSQL: {e}")),
    }
}
