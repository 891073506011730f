//! One module per subcommand, each with its clap `Args` struct and a `run` function.

pub mod append;
pub mod bench;
pub mod bench_ingest;
pub mod bench_load;
pub mod bench_query;
pub mod export;
pub mod export_ocsf;
pub mod get;
pub mod index;
pub mod key;
pub mod keygen;
pub mod proof;
pub mod query;
pub mod replay;
pub mod report;
pub mod serve;
pub mod token;
pub mod verify;
pub mod verify_bundle;
pub mod verify_misbehaviour;
pub mod witness;
