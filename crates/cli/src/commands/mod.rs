//! One module per command.

pub mod accesskeys;
pub mod audit;
pub mod checks;
pub mod contacts;
pub mod cxone_doctor;
pub mod cxone_inventory;
pub mod datastore;
pub mod demo;
pub mod digital;
pub mod doctor;
pub mod guests;
pub mod inventory;
pub mod jobs;
pub mod keys;
pub mod outbox;
pub mod policies;
pub mod posture;
pub mod report;
pub mod secrets;
pub mod serve;
pub mod sim;
pub mod subject;
pub mod webchat;
