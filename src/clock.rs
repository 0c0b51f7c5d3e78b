//! Wall-clock time in Unix seconds, the one source for every expiry decision.
//!
//! Debug builds (the ones the black-box tests run) honour `TESTING_COFFER_CLOCK_FILE`: a file
//! holding a number of seconds added to the system clock, read at every call, so a test can
//! move time forward (expire a share, an access token) without sleeping. Release builds ignore
//! the variable entirely.

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + test_offset()
}

#[cfg(debug_assertions)]
fn test_offset() -> i64 {
    std::env::var_os("TESTING_COFFER_CLOCK_FILE")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(not(debug_assertions))]
fn test_offset() -> i64 {
    0
}
