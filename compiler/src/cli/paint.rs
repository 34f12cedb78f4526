//! ANSI colour for the human output of the verbs, applied only when colour is on.

/// Colours the verbs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Green,
    Red,
    Bold,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Green => "32",
            Paint::Red => "31",
            Paint::Bold => "1",
        }
    }

    /// `text` in this colour when `on`, else unchanged.
    pub fn apply(self, text: &str, on: bool) -> String {
        if on {
            format!("\u{1b}[{}m{text}\u{1b}[0m", self.code())
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_on() {
        assert_eq!(Paint::Red.apply("DENIED", false), "DENIED");
        assert_eq!(
            Paint::Red.apply("DENIED", true),
            "\u{1b}[31mDENIED\u{1b}[0m"
        );
    }
}
