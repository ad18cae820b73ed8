//! The log as the AS stores it: kt-log's `Log` over the durable `FileStore`. Its own module so
//! that the sequencer (its only writer) and the readers (directory, recovery, witnessing)
//! name it without depending on one another.

use kt_log::log::Log;
use kt_log::store::FileStore;

/// The log type the AS runs on.
pub type AsLog = Log<FileStore>;
