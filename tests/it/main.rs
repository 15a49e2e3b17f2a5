//! The integration tests, in one binary: each module is one area, and `support` holds what they
//! share (a real server on a fresh database, a scripted model server, the git hosts' headers,
//! the command line). One binary links the crate once instead of once per file.

mod support;

mod admin;
mod api;
mod browser;
mod builtin_fixtures;
mod cli;
mod contract;
mod crash;
mod examples;
mod hostile;
mod isolation;
mod model_faults;
mod ops;
mod service_files;
mod summarizers;
mod worker;
