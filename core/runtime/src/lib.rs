//! roam-runtime: the tokio driver around `roam_proto::session::Session`.
