//! One module per subcommand, each with its clap `Args` struct and a `run` function.

pub mod append;
pub mod bench;
pub mod bench_query;
pub mod get;
pub mod index;
pub mod key;
pub mod keygen;
pub mod proof;
pub mod query;
pub mod replay;
pub mod serve;
pub mod verify;
