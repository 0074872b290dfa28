//! The national registries behind motcua's identity function: an HTTP adapter for the
//! population and business registries, and a simulator of both; and a simulator of the
//! province's single sign-on, whose officers' tokens the identity function exchanges.

pub mod client;
pub mod eid;
pub mod simulator;
pub mod sso;

pub use client::{HttpRegistry, RegistryClientConfig};
