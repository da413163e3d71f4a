//! What the harness and the viewer share beyond the pure definitions of
//! `harness-core`: the bundle contract ([`contract`]: schema version, queries,
//! rows and their decoding), the report's view model ([`model`]) and its SVG
//! charts ([`charts`], drawn by [`svg`]). Pure Rust with no I/O, so the viewer
//! compiles it to wasm32 and recomputes exactly what `harness report` prints.

pub mod charts;
pub mod commands;
pub mod contract;
pub mod model;
pub mod svg;
