//! The delivery threads: each takes the oldest due delivery of a notification no other thread
//! is sending, applies its filters, sends it and records the outcome; so a receiver that hangs
//! holds one thread, and a rate-limited one only its own deliveries.
