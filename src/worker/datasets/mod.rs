//! What the worker keeps open and how it opens local files: the LRU of open datasets
//! with what each one's reads depend on ([`dataset_cache`]), and local files opened
//! beneath their roots and staged with their sidecars ([`local_files`]).

pub(super) mod dataset_cache;
pub(super) mod local_files;
