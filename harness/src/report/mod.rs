//! Rendering results for people. One view model (the stored experiments and
//! their summaries) rendered by each format.

pub mod table;
