//! One module per command.

pub mod demo;
pub mod inventory;
pub mod sim;
