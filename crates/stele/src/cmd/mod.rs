//! One module per subcommand, each with its clap `Args` struct and a `run` function.

pub mod append;
pub mod bench;
pub mod bench_ingest;
pub mod export_ocsf;
pub mod get;
pub mod key;
pub mod keygen;
pub mod proof;
pub mod serve;
pub mod verify;
