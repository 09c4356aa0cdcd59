pub mod munge;
