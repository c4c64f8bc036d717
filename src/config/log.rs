//! How every command logs: `WECOM_LOG_FORMAT`.

/// The form of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain text, coloured at a terminal only.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}
