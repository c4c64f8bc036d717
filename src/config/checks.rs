//! Values a setting cannot work with, refused when the command line is read (exit 2, naming
//! the flag), so that a mistake stops a command at start instead of surfacing as a worker
//! that takes no job, or loops on the broker's refusal.

/// The longest retry delay, in seconds: RabbitMQ takes a queue's message TTL (a retry delay
/// queue's) up to 2^32 - 1 ms, about 49.7 days.
pub const MAX_RETRY_DELAY_SECS: u64 = 4_294_967;

/// A count that must be at least 1 (0 would mean no work at all, or, for AMQP's prefetch,
/// no limit).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("0 would leave nothing to run: give at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(_) => Err("not a whole number".to_owned()),
    }
}

/// One retry delay in seconds, at most [`MAX_RETRY_DELAY_SECS`].
pub fn retry_delay(text: &str) -> Result<u64, String> {
    let secs: u64 = text
        .trim()
        .parse()
        .map_err(|_| "not a whole number of seconds".to_owned())?;
    if secs > MAX_RETRY_DELAY_SECS {
        return Err(format!(
            "{secs} s is longer than the broker takes as a delay queue's TTL \
             ({MAX_RETRY_DELAY_SECS} s)"
        ));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_zero_and_delays_past_the_brokers_ttl_are_refused() {
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-1").is_err());
        assert_eq!(at_least_one(" 8 "), Ok(8));
        assert_eq!(retry_delay("0"), Ok(0));
        assert_eq!(retry_delay("4294967"), Ok(4_294_967));
        assert!(retry_delay("4294968").is_err());
        assert!(retry_delay("99999999999").is_err());
        assert!(retry_delay("5s").is_err());
    }
}
