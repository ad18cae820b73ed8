//! The API's requests and answers (docs/api.md, `schemas/`): one definition that the server
//! reads and writes and every client writes and reads.

mod answers;
mod binary;
mod requests;

pub use answers::*;
pub use binary::*;
pub use requests::*;
