//! Helpers shared by the integration tests; each area uses only some of them.
#![allow(dead_code)]

pub mod app;
pub mod fake_llm;
