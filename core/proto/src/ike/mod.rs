//! The IKE SA as a sans-IO state machine: one task per exchange under one task manager.
