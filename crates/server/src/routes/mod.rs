//! The HTTP API's handlers, one module per area. They translate requests and responses and
//! call the layers below (sessions, turns, commits, proposals); no route module uses another.

pub mod canon;
pub mod catalog;
pub mod export;
pub mod keys;
pub mod openai;
pub mod ops;
pub mod quests;
pub mod review;
pub mod sessions;
pub mod sparql;
pub mod verify;
