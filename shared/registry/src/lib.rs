//! The national registries behind motcua's identity function: an HTTP adapter for the
//! population and business registries, and a simulator of both.

pub mod client;
pub mod simulator;

pub use client::{HttpRegistry, RegistryClientConfig};
