//! The tables generated from the board and the config at build time (see `build.rs`).
#![allow(dead_code)]

pub use tessera_config::desc::*;
pub use tessera_config::VUART_INTID;

include!(concat!(env!("OUT_DIR"), "/config.rs"));
