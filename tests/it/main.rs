//! The integration tests, one binary (each test binary links libtorch; one link is much
//! faster than twelve), a module per area, as cargo's own `tests/testsuite/`.
mod augment;
mod augment_exact;
mod checkpoint;
mod cli;
mod common;
mod config;
mod data_formats;
mod data_idx;
mod distributed;
mod hostile;
mod loader;
mod long_tail;
mod loss;
mod metrics;
mod model;
mod own_data;
mod parsers_fuzz;
mod plots;
mod pretrained;
mod train;
