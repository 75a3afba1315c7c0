//! One module per command.

pub mod audit;
pub mod demo;
pub mod inventory;
pub mod jobs;
pub mod outbox;
pub mod sim;
