//! `GET /v1/reports/kpi` and `GET /v1/reports/kpi.csv`: the indicators of the province
//! (or one agency) over a span of months, in total, per month and per agency. A report
//! reads the counters of the agencies × months asked for, never the dossiers.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use motcua_domain::calendar::local_date;
use motcua_domain::kpi::score::{IndicatorValue, indicators};
use motcua_domain::kpi::{Counts, Month};
use motcua_domain::{AgencyCode, Lang, Procedure, Role};
use motcua_http::{Caller, Language, Problem, QueryParams, store_problem};
use motcua_ports::reports::{MAX_MONTHS, total};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ReportState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// One agency's code; none: the whole province (an officer: their own agency).
    pub agency: Option<String>,
    /// First month, `YYYY-MM` (default: January of this year).
    pub from: Option<String>,
    /// Last month, `YYYY-MM` (default: this month); at most 36 months after `from`.
    pub to: Option<String>,
}

/// The indicators of one month.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthIndicators {
    /// `YYYY-MM`.
    pub month: String,
    pub indicators: Vec<IndicatorValue>,
}

/// The indicators of one agency over the report's months.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgencyIndicators {
    pub agency: String,
    pub name: String,
    pub indicators: Vec<IndicatorValue>,
}

/// A KPI report.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiReport {
    /// The agency reported on; none: the province.
    pub agency: Option<String>,
    /// `YYYY-MM`.
    pub from: String,
    /// `YYYY-MM`.
    pub to: String,
    /// The day open dossiers are judged on (overdue or not): today in Vietnam.
    #[schema(value_type = String, format = Date)]
    pub as_of: Date,
    /// Over all the months.
    pub indicators: Vec<IndicatorValue>,
    /// Month by month (the trend).
    pub months: Vec<MonthIndicators>,
    /// Agency by agency, over all the months.
    pub agencies: Vec<AgencyIndicators>,
}

fn month_param(raw: Option<&str>, name: &str, default: Month) -> Result<Month, Problem> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(default),
        Some(r) => Month::parse(r).ok_or_else(|| {
            Problem::bad_request(
                &format!("Tham số {name} phải có dạng YYYY-MM"),
                &format!("{name} must be YYYY-MM"),
            )
        }),
    }
}

/// Which agencies `caller` may see the report of, given the `agency` asked for: `None`
/// the whole province.
fn scope(
    caller: &motcua_domain::Actor,
    asked: Option<&str>,
) -> Result<Option<AgencyCode>, Problem> {
    let asked = match asked.map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(raw) => Some(AgencyCode::parse(raw).map_err(|_| {
            Problem::bad_request(
                "Tham số agency không phải mã cơ quan",
                "agency is not an agency code",
            )
        })?),
    };
    let own_only = || {
        Problem::forbidden(
            "Chỉ được xem báo cáo của cơ quan mình",
            "You may read your own agency's report only",
        )
    };
    match caller.role {
        Role::Admin => Ok(asked),
        // A leader of one agency (the token names it) sees that agency; a province leader
        // sees any.
        Role::Leader | Role::Officer => match (&caller.agency, asked) {
            (None, asked) if caller.role == Role::Leader => Ok(asked),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(a)) if *own == a => Ok(Some(a)),
            _ => Err(own_only()),
        },
        _ => Err(Problem::forbidden(
            "Chỉ lãnh đạo, quản trị viên và cán bộ xem báo cáo chỉ số",
            "Only leaders, admins and officers read KPI reports",
        )),
    }
}

/// Builds the report `q` asks for.
pub(crate) async fn report(
    s: &ReportState,
    caller: &motcua_domain::Actor,
    q: &KpiQuery,
    lang: Lang,
) -> Result<(KpiReport, Vec<Procedure>), Problem> {
    let agency = scope(caller, q.agency.as_deref())?;
    let today = local_date(s.clock.now());
    let this_month = Month::of(today);
    let from = month_param(
        q.from.as_deref(),
        "from",
        Month {
            year: this_month.year,
            month: 1,
        },
    )?;
    let to = month_param(q.to.as_deref(), "to", this_month)?;
    if from > to || from.span(to) > MAX_MONTHS {
        return Err(Problem::bad_request(
            &format!("Khoảng thời gian phải từ from đến to, tối đa {MAX_MONTHS} tháng"),
            &format!("from must not be after to, and the span is at most {MAX_MONTHS} months"),
        ));
    }
    let catalogue = s.catalogue.procedures().await.map_err(store_problem)?;
    let procedures: Vec<Procedure> = catalogue
        .into_iter()
        .filter(|p| agency.as_ref().is_none_or(|a| p.agency == *a))
        .collect();
    let mut agencies: Vec<(AgencyCode, String)> = procedures
        .iter()
        .map(|p| (p.agency.clone(), p.agency_name.clone()))
        .collect();
    agencies.sort();
    agencies.dedup_by(|a, b| a.0 == b.0);
    if let Some(a) = &agency
        && agencies.is_empty()
    {
        // An agency with no procedure in the catalogue: its counters still count.
        agencies.push((a.clone(), String::new()));
    }
    let codes: Vec<AgencyCode> = agencies.iter().map(|(a, _)| a.clone()).collect();
    let rows = s.kpi.rows(&codes, from, to).await.map_err(store_problem)?;
    let scoring = &s.config.scoring;
    let of = |counts: &Counts, procs: &[Procedure]| indicators(counts, procs, today, scoring, lang);
    let mut by_month: BTreeMap<Month, Counts> = BTreeMap::new();
    let mut by_agency: BTreeMap<&AgencyCode, Counts> = BTreeMap::new();
    for (key, counts) in &rows {
        by_month.entry(key.month).or_default().add_all(counts);
        by_agency.entry(&key.agency).or_default().add_all(counts);
    }
    let months = from
        .through(to)
        .map(|m| MonthIndicators {
            month: m.to_string(),
            indicators: of(by_month.get(&m).unwrap_or(&Counts::default()), &procedures),
        })
        .collect();
    let per_agency = agencies
        .iter()
        .map(|(code, name)| {
            let procs: Vec<Procedure> = procedures
                .iter()
                .filter(|p| p.agency == *code)
                .cloned()
                .collect();
            AgencyIndicators {
                agency: code.as_str().to_owned(),
                name: name.clone(),
                indicators: of(by_agency.get(code).unwrap_or(&Counts::default()), &procs),
            }
        })
        .collect();
    let r = KpiReport {
        agency: agency.map(|a| a.as_str().to_owned()),
        from: from.to_string(),
        to: to.to_string(),
        as_of: today,
        indicators: of(&total(&rows), &procedures),
        months,
        agencies: per_agency,
    };
    Ok((r, procedures))
}

/// Whether the caller asked for CSV (`Accept: text/csv` before any JSON).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| match (a.find("text/csv"), a.find("application/json")) {
            (Some(_), None) => true,
            (Some(c), Some(j)) => c < j,
            _ => false,
        })
}

fn cell(s: &str) -> String {
    // Quoted when needed; a leading formula character is neutralised for spreadsheets.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_default()
}

/// The export sent upward: one line per scope (the province or agency, then each
/// agency) and indicator over the whole span, then one per month and indicator.
pub fn to_csv(r: &KpiReport) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str("scope,scope_name,period,indicator,name,numerator,denominator,value,score,max_score,target,met\r\n");
    let period = format!("{}..{}", r.from, r.to);
    let scope = r.agency.clone().unwrap_or_else(|| "province".into());
    let mut line = |scope: &str, scope_name: &str, period: &str, i: &IndicatorValue| {
        let fields = [
            cell(scope),
            cell(scope_name),
            cell(period),
            i.indicator.as_str().to_owned(),
            cell(&i.name),
            i.numerator.to_string(),
            i.denominator.to_string(),
            num(i.value),
            num(i.score),
            num(Some(i.max_score)),
            num(Some(i.target)),
            i.met.map(|m| m.to_string()).unwrap_or_default(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    };
    for i in &r.indicators {
        line(&scope, "", &period, i);
    }
    for a in &r.agencies {
        for i in &a.indicators {
            line(&a.agency, &a.name, &period, i);
        }
    }
    for m in &r.months {
        for i in &m.indicators {
            line(&scope, "", &m.month, i);
        }
    }
    out
}

fn csv_response(r: &KpiReport) -> Response {
    let name = format!(
        "kpi-{}-{}-{}.csv",
        r.agency.as_deref().unwrap_or("province"),
        r.from,
        r.to
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::VARY, "Accept".to_owned()),
        ],
        to_csv(r),
    )
        .into_response()
}

/// The KPI report: JSON, or CSV when `Accept` asks for `text/csv`.
#[utoipa::path(get, path = "/v1/reports/kpi", tag = "reports",
    params(KpiQuery),
    security(("bearer" = [])),
    responses((status = 200, body = KpiReport, content_type = "application/json",
            description = "The report (`text/csv` too, as `/v1/reports/kpi.csv` gives it)"),
        (status = 400, description = "A month or agency that is not one, or a span over 36 months"),
        (status = 403, description = "Not a leader, admin or officer, or another agency's report")))]
pub(crate) async fn kpi(
    State(s): State<ReportState>,
    Caller(caller): Caller,
    Language(lang): Language,
    headers: HeaderMap,
    QueryParams(q): QueryParams<KpiQuery>,
) -> Result<Response, Problem> {
    let (r, _) = report(&s, &caller, &q, lang).await?;
    if wants_csv(&headers) {
        return Ok(csv_response(&r));
    }
    Ok((
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::VARY, "Accept"),
        ],
        axum::Json(r),
    )
        .into_response())
}

/// The KPI report as CSV (UTF-8 with a byte-order mark, for spreadsheets).
#[utoipa::path(get, path = "/v1/reports/kpi.csv", tag = "reports",
    params(KpiQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String,
            description = "scope, scope_name, period, indicator, name, numerator, denominator, value, score, max_score, target, met"),
        (status = 400, description = "A month or agency that is not one, or a span over 36 months"),
        (status = 403, description = "Not a leader, admin or officer, or another agency's report")))]
pub(crate) async fn kpi_csv(
    State(s): State<ReportState>,
    Caller(caller): Caller,
    Language(lang): Language,
    QueryParams(q): QueryParams<KpiQuery>,
) -> Result<Response, Problem> {
    let (r, _) = report(&s, &caller, &q, lang).await?;
    Ok(csv_response(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_neither_run_as_formulas_nor_break_lines() {
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("\t=cmd"), "'\t=cmd", "review finding: a leading tab");
        assert_eq!(
            cell("\r=cmd"),
            "\"'\r=cmd\"",
            "review finding: a leading CR"
        );
        assert_eq!(cell("-0.5"), "-0.5", "numbers stay numbers");
        assert_eq!(cell("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(cell("Sở Tư pháp"), "Sở Tư pháp");
    }

    #[test]
    fn csv_is_chosen_by_accept_only_before_json() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, v.parse().unwrap());
            m
        };
        assert!(wants_csv(&h("text/csv")));
        assert!(wants_csv(&h("text/csv, application/json")));
        assert!(!wants_csv(&h("application/json, text/csv")));
        assert!(!wants_csv(&h("*/*")));
        assert!(!wants_csv(&HeaderMap::new()));
    }
}
