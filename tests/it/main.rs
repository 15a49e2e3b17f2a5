//! The integration tests, in one binary: each module is one area, and `support` holds what they
//! share (a real server on a fresh database, a scripted model server, the git hosts' headers,
//! the command line). One binary links the crate once instead of once per file.

mod support;

mod admin;
mod api;
mod browser;
mod builtin_fixtures;
mod cli;
mod client;
mod container;
mod contract;
mod crash;
mod durability;
mod examples;
mod files;
mod history;
mod hostile;
mod isolation;
mod limits;
mod live;
mod logs;
mod mcp;
mod model_faults;
mod notify;
mod ops;
mod pagination;
mod payloads;
mod service_files;
mod single_server;
mod summarizers;
mod worker;
