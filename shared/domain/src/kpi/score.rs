//! The indicators of Decision 766 from summed counters and the catalogue, each with its
//! numerator, denominator, value, score and target. Weights, thresholds and targets are
//! configuration ([`Scoring`]); the defaults are DOMAIN.md's ("scores used in practice").

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Counts, names};
use crate::catalogue::{OnlineLevel, Procedure};
use crate::i18n::Lang;

/// The indicators, in the order reports list them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    /// Dossiers settled on time: finished by the due date, or open and not overdue.
    OnTime,
    /// Dossiers filed online.
    OnlineFiling,
    /// Fee-charging dossiers paid online.
    OnlinePayment,
    /// Procedures offered fully online (catalogue).
    ProceduresOnline,
    /// Fully online procedures that had online dossiers.
    OnlineProceduresUsed,
    /// Finished dossiers with an electronic result.
    ElectronicResults,
    /// Dossiers whose every component is digitised.
    DigitisedDossiers,
    /// Dossiers that reused digitised data.
    ReusedData,
}

impl Indicator {
    pub const ALL: [Indicator; 8] = [
        Indicator::OnTime,
        Indicator::OnlineFiling,
        Indicator::OnlinePayment,
        Indicator::ProceduresOnline,
        Indicator::OnlineProceduresUsed,
        Indicator::ElectronicResults,
        Indicator::DigitisedDossiers,
        Indicator::ReusedData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::OnTime => "on_time",
            Indicator::OnlineFiling => "online_filing",
            Indicator::OnlinePayment => "online_payment",
            Indicator::ProceduresOnline => "procedures_online",
            Indicator::OnlineProceduresUsed => "online_procedures_used",
            Indicator::ElectronicResults => "electronic_results",
            Indicator::DigitisedDossiers => "digitised_dossiers",
            Indicator::ReusedData => "reused_data",
        }
    }

    pub fn parse(s: &str) -> Option<Indicator> {
        Indicator::ALL.into_iter().find(|i| i.as_str() == s)
    }

    pub fn name(self, lang: Lang) -> &'static str {
        match self {
            Indicator::OnTime => lang.pick(
                "Tỷ lệ hồ sơ giải quyết đúng hạn",
                "Dossiers settled on time",
            ),
            Indicator::OnlineFiling => {
                lang.pick("Tỷ lệ hồ sơ nộp trực tuyến", "Dossiers filed online")
            }
            Indicator::OnlinePayment => lang.pick(
                "Tỷ lệ hồ sơ có nghĩa vụ tài chính được thanh toán trực tuyến",
                "Fee-charging dossiers paid online",
            ),
            Indicator::ProceduresOnline => lang.pick(
                "Tỷ lệ thủ tục cung cấp dịch vụ công trực tuyến toàn trình",
                "Procedures offered fully online",
            ),
            Indicator::OnlineProceduresUsed => lang.pick(
                "Tỷ lệ thủ tục trực tuyến toàn trình có phát sinh hồ sơ",
                "Fully online procedures that had online dossiers",
            ),
            Indicator::ElectronicResults => lang.pick(
                "Tỷ lệ kết quả giải quyết được số hóa (kết quả điện tử)",
                "Finished dossiers with an electronic result",
            ),
            Indicator::DigitisedDossiers => {
                lang.pick("Tỷ lệ hồ sơ được số hóa", "Dossiers digitised")
            }
            Indicator::ReusedData => lang.pick(
                "Tỷ lệ hồ sơ tái sử dụng dữ liệu số hóa",
                "Dossiers that reused digitised data",
            ),
        }
    }
}

/// How an indicator's value becomes points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `value × points`.
    Linear { points: f64 },
    /// `points` when the value reaches `at`, else `below`.
    Threshold { at: f64, points: f64, below: f64 },
}

impl Rule {
    pub fn score(self, value: f64) -> f64 {
        match self {
            Rule::Linear { points } => value * points,
            Rule::Threshold { at, points, below } => {
                if value >= at {
                    points
                } else {
                    below
                }
            }
        }
    }

    /// The most points the rule gives.
    pub fn max(self) -> f64 {
        match self {
            Rule::Linear { points } => points,
            Rule::Threshold { points, below, .. } => points.max(below),
        }
    }

    fn check(self) -> Result<(), String> {
        let ok = |x: f64| x.is_finite() && (0.0..=100.0).contains(&x);
        match self {
            Rule::Linear { points } if ok(points) => Ok(()),
            Rule::Threshold { at, points, below }
                if ok(points) && ok(below) && (0.0..=1.0).contains(&at) =>
            {
                Ok(())
            }
            _ => Err("points are 0–100 and thresholds 0–1".into()),
        }
    }
}

/// One indicator's scoring: its rule and the province's target (a share, 0–1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Scored {
    pub rule: Rule,
    pub target: f64,
}

/// Every indicator's scoring (`MOTCUA_KPI_SCORING`: a JSON object naming the indicators to
/// change; the others keep their defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Scoring(pub BTreeMap<Indicator, Scored>);

impl Default for Scoring {
    fn default() -> Self {
        use Indicator as I;
        let lin = |points, target| Scored {
            rule: Rule::Linear { points },
            target,
        };
        let thr = |at, points, below| Scored {
            rule: Rule::Threshold { at, points, below },
            target: at,
        };
        Scoring(BTreeMap::from([
            (I::OnTime, lin(20.0, 1.0)),
            (I::OnlineFiling, thr(0.5, 6.0, 3.0)),
            (I::OnlinePayment, thr(0.3, 6.0, 0.9)),
            (I::ProceduresOnline, thr(0.8, 2.0, 0.0)),
            (I::OnlineProceduresUsed, lin(4.0, 1.0)),
            (I::ElectronicResults, lin(6.0, 1.0)),
            (I::DigitisedDossiers, thr(0.8, 4.0, 0.0)),
            (I::ReusedData, thr(0.8, 2.0, 0.0)),
        ]))
    }
}

impl Scoring {
    /// The defaults with the indicators `json` names replaced, e.g.
    /// `{"online_filing": {"rule": {"threshold": {"at": 0.6, "points": 6, "below": 3}}, "target": 0.6}}`.
    pub fn with_overrides(json: &str) -> Result<Scoring, String> {
        let given: BTreeMap<String, Scored> =
            serde_json::from_str(json).map_err(|e| format!("not a scoring object: {e}"))?;
        let mut s = Scoring::default();
        for (name, scored) in given {
            let i = Indicator::parse(&name).ok_or_else(|| format!("no indicator '{name}'"))?;
            scored.rule.check().map_err(|e| format!("{name}: {e}"))?;
            if !(scored.target.is_finite() && (0.0..=1.0).contains(&scored.target)) {
                return Err(format!("{name}: the target is a share, 0–1"));
            }
            s.0.insert(i, scored);
        }
        Ok(s)
    }

    pub fn of(&self, i: Indicator) -> Scored {
        self.0[&i]
    }
}

/// One indicator of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndicatorValue {
    pub indicator: Indicator,
    pub name: String,
    pub numerator: i64,
    pub denominator: i64,
    /// `numerator / denominator`; none when nothing was counted.
    pub value: Option<f64>,
    /// Points earned; none when there is no value.
    pub score: Option<f64>,
    pub max_score: f64,
    pub target: f64,
    /// Whether the value reaches the target.
    pub met: Option<bool>,
}

/// The catalogue's side of the indicators: the procedures of the agencies reported on.
pub fn catalogue_counts<'a>(
    procedures: impl IntoIterator<Item = &'a Procedure>,
) -> (i64, Vec<&'a str>) {
    let mut all = 0;
    let mut full = Vec::new();
    for p in procedures {
        all += 1;
        if p.online_level == OnlineLevel::Full {
            full.push(p.code.as_str());
        }
    }
    (all, full)
}

/// The indicators of `counts` (summed over the report's rows) on `today`, with the
/// catalogue's `procedures` of the same agencies.
pub fn indicators(
    counts: &Counts,
    procedures: &[Procedure],
    today: Date,
    scoring: &Scoring,
    lang: Lang,
) -> Vec<IndicatorValue> {
    use names::*;
    let mut open_on_time = counts.get(OPEN_WAITING);
    let mut open = counts.get(OPEN_WAITING);
    for (due, n) in counts.with_prefix(OPEN_DUE_PREFIX) {
        open += n;
        // An open dossier is overdue from the day after its due date.
        if due.parse::<Date>().is_ok_and(|d| d >= today) {
            open_on_time += n;
        }
    }
    let (procs, full) = catalogue_counts(procedures);
    let used = full
        .iter()
        .filter(|code| counts.get(&format!("{ONLINE_PROCEDURE_PREFIX}{code}")) > 0)
        .count() as i64;
    let filed = counts.get(FILED);
    Indicator::ALL
        .into_iter()
        .map(|i| {
            let (n, d) = match i {
                Indicator::OnTime => (
                    counts.get(FINISHED_ON_TIME) + open_on_time,
                    counts.get(FINISHED) + open,
                ),
                Indicator::OnlineFiling => (counts.get("filed_online"), filed),
                Indicator::OnlinePayment => (counts.get(PAID_ONLINE), counts.get(FEE_CHARGED)),
                Indicator::ProceduresOnline => (full.len() as i64, procs),
                Indicator::OnlineProceduresUsed => (used, full.len() as i64),
                Indicator::ElectronicResults => {
                    (counts.get(RESULT_ELECTRONIC), counts.get(FINISHED))
                }
                Indicator::DigitisedDossiers => (counts.get(DOSSIERS_DIGITISED), filed),
                Indicator::ReusedData => (counts.get(DOSSIERS_REUSED), filed),
            };
            let s = scoring.of(i);
            let value = (d > 0).then(|| n as f64 / d as f64);
            IndicatorValue {
                indicator: i,
                name: i.name(lang).to_owned(),
                numerator: n,
                denominator: d,
                value,
                score: value.map(|v| (s.rule.score(v) * 100.0).round() / 100.0),
                max_score: s.rule.max(),
                target: s.target,
                met: value.map(|v| v >= s.target),
            }
        })
        .collect()
}
