//! What a response cost: the versioned price table and the arithmetic.
//!
//! The table is `collector/prices.json`, embedded at build time. It is taken
//! from Claude Code's own model catalog (so hooktrail's figures agree with
//! the `cost_usd` of Claude Code's `api_request` telemetry) and says where it
//! comes from in its `source`. A config file can name a second table
//! (`prices_file`) whose entries replace or add to the embedded ones.
//!
//! A model the table does not know has no price: its cost is `None`, shown
//! as "price unknown", never as $0.

use serde::Deserialize;

use hooktrail_shared::transcript::ResponseUsage;

/// The most tokens of one kind (input, output, each cache kind) one API
/// response can count. The largest context window is a million tokens, so
/// no real response comes near this; a count beyond it is a corrupt or
/// hostile transcript (`9223372036854775807`, `u64::MAX`), and storing it
/// would overflow every sum over `usage` (DESIGN §6).
pub(crate) const MAX_TOKENS_PER_KIND: u64 = 10_000_000;

/// The most web searches one API response can count, for the same reason.
pub(crate) const MAX_WEB_SEARCHES: u64 = 10_000;

/// Whether every count of a response is within the bounds above: a
/// response that is not is refused whole (counted, never stored), since
/// none of its figures can be trusted.
pub(crate) fn is_plausible(usage: &ResponseUsage) -> bool {
    [
        usage.input,
        usage.output,
        usage.cache_write_5m,
        usage.cache_write_1h,
        usage.cache_read,
    ]
    .iter()
    .all(|&count| count <= MAX_TOKENS_PER_KIND)
        && usage.web_search <= MAX_WEB_SEARCHES
}

/// The embedded price table.
pub(crate) const EMBEDDED_PRICES: &str = include_str!("../prices.json");

/// Rates in USD per million tokens (web search: USD per request).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(crate) struct Rates {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
    #[serde(default)]
    pub web_search: f64,
}

/// The higher rates some models charge for a request with a long prompt.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(crate) struct LongPrompt {
    /// Above this many prompt tokens (input, cache reads and writes), every
    /// token of the request is priced at `rates`.
    pub above_prompt_tokens: u64,
    #[serde(flatten)]
    pub rates: PartialRates,
}

/// Long-prompt rates; web search keeps the base price when absent.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(crate) struct PartialRates {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
}

/// One model's prices.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ModelPrice {
    /// The catalog's id (`claude-sonnet-4-5`): also matched as a prefix, so a
    /// dated id (`claude-sonnet-4-5-20250929`) finds it.
    pub id: String,
    /// Every exact name the model goes by (first party, Bedrock, Vertex, …).
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(flatten)]
    pub rates: Rates,
    #[serde(default)]
    pub long_prompt: Option<LongPrompt>,
    /// Rates of requests made in fast mode (`usage.speed` = `fast`).
    #[serde(default)]
    pub fast: Option<PartialRates>,
}

/// A price table file.
#[derive(Debug, Clone, Deserialize)]
pub struct PriceTable {
    /// The table's version (a date), stored with the costs it computed.
    pub(crate) version: String,
    pub(crate) models: Vec<ModelPrice>,
}

impl PriceTable {
    /// The embedded table.
    pub(crate) fn embedded() -> PriceTable {
        serde_json::from_str(EMBEDDED_PRICES).expect("collector/prices.json is valid (tested)")
    }

    /// The embedded table with the entries of `overrides` (a table file's
    /// text) replacing those of the same id, or added. An entry with a
    /// negative (or not finite) price is refused, and so is one whose `id`
    /// or `names` name a built-in model under another id: the built-in
    /// entry would still win the lookup, so the override would change the
    /// table's version (and reprice history) without changing a cost. The
    /// error names the entry.
    pub(crate) fn with_overrides(overrides: &str) -> Result<PriceTable, String> {
        let extra: PriceTable = serde_json::from_str(overrides)
            .map_err(|error| format!("the price table is not valid: {error}"))?;
        let mut table = PriceTable::embedded();
        for (index, model) in extra.models.iter().enumerate() {
            let entry = || format!("model {:?} (entry {} of \"models\")", model.id, index + 1);
            model
                .check_prices()
                .map_err(|why| format!("{}: {why}", entry()))?;
            if let Some((built_in, name)) = table.covered_by(model) {
                return Err(format!(
                    "{}: the name {name:?} is the built-in model {built_in:?}'s, which would keep its own prices; \
                     use \"id\": {built_in:?} to replace them",
                    entry()
                ));
            }
        }
        table.version = format!("{}+{}", table.version, extra.version);
        for model in extra.models {
            table.models.retain(|known| known.id != model.id);
            table.models.push(model);
        }
        Ok(table)
    }

    /// The built-in model (its id) and the name through which `model`, an
    /// override with another id, names it, if it does.
    fn covered_by<'a>(&'a self, model: &'a ModelPrice) -> Option<(&'a str, &'a str)> {
        let mut names = std::iter::once(&model.id).chain(&model.names);
        names.find_map(|name| {
            self.models
                .iter()
                .find(|known| {
                    known.id != model.id && (&known.id == name || known.names.contains(name))
                })
                .map(|known| (known.id.as_str(), name.as_str()))
        })
    }

    /// The prices of `model` as a transcript names it, if known.
    pub(crate) fn find(&self, model: &str) -> Option<&ModelPrice> {
        let name = model.trim().trim_end_matches("[1m]");
        if let Some(found) = self
            .models
            .iter()
            .find(|price| price.id == name || price.names.iter().any(|known| known == name))
        {
            return Some(found);
        }
        // Bedrock's regional prefixes (`eu.anthropic.…`) and date or version
        // suffixes: match the longest catalog id the name contains at a word
        // start.
        let bare = name.rsplit("anthropic.").next().unwrap_or(name);
        self.models
            .iter()
            .filter(|price| {
                bare.strip_prefix(price.id.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '@', ':']))
            })
            .max_by_key(|price| price.id.len())
    }

    /// What one response cost in USD, or `None` when the model has no price.
    pub(crate) fn cost(&self, usage: &ResponseUsage) -> Option<f64> {
        self.find(&usage.model).map(|price| price.cost(usage))
    }
}

impl ModelPrice {
    /// Every price of the entry is a finite number of dollars, zero or
    /// more; the error names the first that is not.
    fn check_prices(&self) -> Result<(), String> {
        let mut prices = vec![
            ("input", self.rates.input),
            ("output", self.rates.output),
            ("cache_write_5m", self.rates.cache_write_5m),
            ("cache_write_1h", self.rates.cache_write_1h),
            ("cache_read", self.rates.cache_read),
            ("web_search", self.rates.web_search),
        ];
        for (group, rates) in [
            ("long_prompt", self.long_prompt.map(|long| long.rates)),
            ("fast", self.fast),
        ] {
            if let Some(rates) = rates {
                prices.extend([
                    (group, rates.input),
                    (group, rates.output),
                    (group, rates.cache_write_5m),
                    (group, rates.cache_write_1h),
                    (group, rates.cache_read),
                ]);
            }
        }
        match prices
            .into_iter()
            .find(|(_, price)| !price.is_finite() || *price < 0.0)
        {
            Some((name, price)) => Err(format!(
                "the price {name} is {price}: prices must be zero or more"
            )),
            None => Ok(()),
        }
    }

    /// The cost of one response at these prices.
    pub(crate) fn cost(&self, usage: &ResponseUsage) -> f64 {
        let prompt = usage.total_input();
        let special = match (self.fast, self.long_prompt) {
            // Fast mode wins over the long-prompt tier, as in Claude Code.
            (Some(fast), _) if usage.speed.as_deref() == Some("fast") => Some(fast),
            (_, Some(long)) if prompt > long.above_prompt_tokens => Some(long.rates),
            _ => None,
        };
        let rates = match special {
            Some(rates) => Rates {
                input: rates.input,
                output: rates.output,
                cache_write_5m: rates.cache_write_5m,
                cache_write_1h: rates.cache_write_1h,
                cache_read: rates.cache_read,
                web_search: self.rates.web_search,
            },
            None => self.rates,
        };
        let tokens = (usage.input as f64 * rates.input
            + usage.output as f64 * rates.output
            + usage.cache_write_5m as f64 * rates.cache_write_5m
            + usage.cache_write_1h as f64 * rates.cache_write_1h
            + usage.cache_read as f64 * rates.cache_read)
            / 1_000_000.0;
        // Claude Code's formula: US-only inference costs 1.1× on tokens;
        // web searches are priced per request either way.
        let geography = if usage.inference_geo.as_deref() == Some("us") {
            1.1
        } else {
            1.0
        };
        tokens * geography + usage.web_search as f64 * rates.web_search
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(model: &str) -> ResponseUsage {
        ResponseUsage {
            message_id: "msg".to_owned(),
            model: model.to_owned(),
            input: 1_000_000,
            output: 1_000_000,
            cache_write_5m: 1_000_000,
            cache_write_1h: 1_000_000,
            cache_read: 1_000_000,
            web_search: 10,
            ..ResponseUsage::default()
        }
    }

    #[test]
    fn the_embedded_table_parses_and_prices_dated_and_provider_ids() {
        let table = PriceTable::embedded();
        assert!(table.models.len() >= 20);
        // Sonnet 4.5: 3 + 15 + 3.75 + 6 + 0.30 + 10 × 0.01.
        let expected = 3.0 + 15.0 + 3.75 + 6.0 + 0.3 + 0.1;
        for name in [
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5-20250929[1m]",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ] {
            let cost = table.cost(&usage(name)).unwrap_or_else(|| panic!("{name}"));
            assert!((cost - expected).abs() < 1e-9, "{name}: {cost}");
        }
    }

    #[test]
    fn the_longest_id_wins_and_unknown_models_have_no_price() {
        let table = PriceTable::embedded();
        assert_eq!(
            table.find("claude-opus-4-1-20250805").unwrap().id,
            "claude-opus-4-1"
        );
        assert_eq!(
            table.find("claude-sonnet-5-5").unwrap().id,
            "claude-sonnet-5-5"
        );
        assert_eq!(table.find("claude-sonnet-5").unwrap().id, "claude-sonnet-5");
        assert!(table.find("gpt-4o").is_none());
        assert!(table.find("claude-sonnet-55").is_none());
        assert!(table.cost(&usage("my-local-model")).is_none());
    }

    #[test]
    fn a_long_prompt_prices_every_token_of_the_request_higher() {
        let table = PriceTable::embedded();
        let mut short = ResponseUsage {
            model: "claude-haiku-5-5".to_owned(),
            input: 1_000,
            output: 1_000_000,
            ..ResponseUsage::default()
        };
        let low = table.cost(&short).unwrap();
        assert!((low - (0.0001 + 0.5)).abs() < 1e-9, "{low}");
        short.cache_read = 200_000;
        let high = table.cost(&short).unwrap();
        assert!((high - (0.0005 + 2.5 + 0.01)).abs() < 1e-9, "{high}");
    }

    #[test]
    fn fast_mode_and_us_inference_follow_claude_codes_formula() {
        let table = PriceTable::embedded();
        let mut request = ResponseUsage {
            model: "claude-opus-5-5".to_owned(),
            input: 1_000_000,
            web_search: 1,
            ..ResponseUsage::default()
        };
        assert!((table.cost(&request).unwrap() - 4.01).abs() < 1e-9);
        request.speed = Some("fast".to_owned());
        assert!((table.cost(&request).unwrap() - 8.01).abs() < 1e-9);
        request.speed = None;
        request.inference_geo = Some("us".to_owned());
        assert!((table.cost(&request).unwrap() - 4.41).abs() < 1e-9);
    }

    #[test]
    fn overrides_replace_and_add_models() {
        let table = PriceTable::with_overrides(
            r#"{"version":"mine","models":[{"id":"claude-sonnet-4-5","input":1,"output":1,"cache_write_5m":1,"cache_write_1h":1,"cache_read":1},{"id":"local-llm","input":0,"output":0,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0}]}"#,
        )
        .unwrap();
        assert!(table.version.ends_with("+mine"));
        assert_eq!(table.find("claude-sonnet-4-5").unwrap().rates.input, 1.0);
        assert_eq!(table.cost(&usage("local-llm")), Some(0.0));
        assert!(PriceTable::with_overrides("{").is_err());
    }

    #[test]
    fn overrides_with_negative_prices_or_covering_another_id_are_refused_by_name() {
        let negative = PriceTable::with_overrides(
            r#"{"version":"v","models":[{"id":"ok","input":0,"output":0,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0},{"id":"cheap","input":-1,"output":1,"cache_write_5m":1,"cache_write_1h":1,"cache_read":1}]}"#,
        )
        .unwrap_err();
        assert!(negative.contains("\"cheap\" (entry 2"), "{negative}");
        assert!(negative.contains("input is -1"), "{negative}");
        let fast = PriceTable::with_overrides(
            r#"{"version":"v","models":[{"id":"f","input":1,"output":1,"cache_write_5m":1,"cache_write_1h":1,"cache_read":1,"fast":{"input":1,"output":-2,"cache_write_5m":1,"cache_write_1h":1,"cache_read":1}}]}"#,
        )
        .unwrap_err();
        assert!(fast.contains("fast is -2"), "{fast}");
        let covering = PriceTable::with_overrides(
            r#"{"version":"v","models":[{"id":"my-sonnet","names":["claude-sonnet-4-5"],"input":1,"output":1,"cache_write_5m":1,"cache_write_1h":1,"cache_read":1}]}"#,
        )
        .unwrap_err();
        assert!(
            covering.contains("\"my-sonnet\" (entry 1")
                && covering.contains("\"claude-sonnet-4-5\""),
            "{covering}"
        );
    }
}
