//! Helpers shared by the integration tests; each area uses only some of them.
#![allow(dead_code)]

pub mod app;
pub mod child;
pub mod cli;
pub mod digest_model;
pub mod fake_llm;
pub mod pages;
pub mod provider;
pub mod server;
pub mod tool;
