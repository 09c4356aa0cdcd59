//! Wire protocol and call UI.
