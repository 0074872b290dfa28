//! `GET /v1/reports/kpi/trend.svg`: one indicator month by month against its target, drawn
//! on the server as SVG (no chart library, nothing to build): the dashboard inlines it,
//! and a report can embed it as it is.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use motcua_domain::kpi::score::Indicator;
use motcua_http::{Caller, Language, Problem, QueryParams};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ReportState;
use crate::http::{KpiQuery, MonthIndicators, report};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// The indicator, e.g. `online_filing`.
    pub indicator: String,
    /// As for `/v1/reports/kpi`.
    pub agency: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The chart of `indicator` over `months`: a line of the monthly values (percent), a dashed
/// line at the target, the months along the bottom.
pub fn trend(title: &str, indicator: Indicator, months: &[MonthIndicators], target: f64) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 260.0, 44.0, 12.0, 34.0, 30.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let n = months.len().max(1) as f64;
    let x = |i: usize| left + plot_w * (i as f64 + 0.5) / n;
    let y = |v: f64| top + plot_h * (1.0 - v.clamp(0.0, 1.0));
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}" data-indicator="{i}" font-family="sans-serif" font-size="11">"#,
        t = esc(title),
        i = indicator.as_str()
    );
    out.push_str(&format!(
        r#"<title>{}</title><text x="{left}" y="18" font-size="13" font-weight="bold">{}</text>"#,
        esc(title),
        esc(title)
    ));
    for pct in [0, 25, 50, 75, 100] {
        let yy = y(f64::from(pct) / 100.0);
        out.push_str(&format!(
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{pct}%</text>"##,
            w - right,
            left - 6.0,
            yy + 4.0
        ));
    }
    let ty = y(target);
    out.push_str(&format!(
        r##"<line class="target" x1="{left}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#c0392b" stroke-dasharray="6 4"/>"##,
        w - right
    ));
    let mut points = Vec::new();
    for (i, m) in months.iter().enumerate() {
        let value = m
            .indicators
            .iter()
            .find(|v| v.indicator == indicator)
            .and_then(|v| v.value);
        // Months are `YYYY-MM`: the label is the month number.
        let label = m.month.get(5..).unwrap_or(&m.month);
        out.push_str(&format!(
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            x(i),
            h - 10.0,
            esc(label)
        ));
        if let Some(v) = value {
            points.push(format!("{:.1},{:.1}", x(i), y(v)));
            out.push_str(&format!(
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f5fa8" data-month="{}" data-value="{v:.4}"/>"##,
                x(i),
                y(v),
                esc(&m.month)
            ));
        }
    }
    if points.len() > 1 {
        out.push_str(&format!(
            r##"<polyline fill="none" stroke="#1f5fa8" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        ));
    }
    out.push_str("</svg>");
    out
}

/// An indicator month by month against its target, as SVG.
#[utoipa::path(get, path = "/v1/reports/kpi/trend.svg", tag = "reports",
    params(TrendQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "image/svg+xml", body = String,
            description = "The indicator's monthly values (percent) and its target"),
        (status = 400, description = "No such indicator, or a month or agency that is not one, or a span over 36 months"),
        (status = 403, description = "Not a leader, admin or officer, or another agency's report")))]
pub(crate) async fn trend_svg(
    State(s): State<ReportState>,
    Caller(caller): Caller,
    Language(lang): Language,
    QueryParams(q): QueryParams<TrendQuery>,
) -> Result<Response, Problem> {
    let indicator = Indicator::parse(q.indicator.trim()).ok_or_else(|| {
        Problem::bad_request(
            "Tham số indicator không phải chỉ số nào",
            "indicator names no indicator",
        )
    })?;
    let kq = KpiQuery {
        agency: q.agency,
        from: q.from,
        to: q.to,
    };
    let (r, _) = report(&s, &caller, &kq, lang).await?;
    let target = s.config.scoring.of(indicator).target;
    let scope = match &r.agency {
        Some(a) => a.clone(),
        None => lang.pick("Toàn tỉnh", "Province").to_owned(),
    };
    let title = format!("{} — {scope}", indicator.name(lang));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        trend(&title, indicator, &r.months, target),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_domain::kpi::Counts;
    use motcua_domain::kpi::score::{Scoring, indicators};

    #[test]
    fn the_chart_has_a_point_per_month_with_a_value_and_escapes_text() {
        let mut c = Counts::default();
        c.add("filed", 4);
        c.add("filed_online", 1);
        let today = jiff::civil::date(2026, 12, 1);
        let vals =
            |c: &Counts| indicators(c, &[], today, &Scoring::default(), motcua_domain::Lang::Vi);
        let months = vec![
            MonthIndicators {
                month: "2026-01".into(),
                indicators: vals(&c),
            },
            MonthIndicators {
                month: "2026-02".into(),
                indicators: vals(&Counts::default()),
            },
        ];
        let svg = trend("<b>&", Indicator::OnlineFiling, &months, 0.5);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<circle").count(), 1, "no value, no point");
        assert!(svg.contains(r#"data-value="0.2500""#), "{svg}");
        assert!(svg.contains("&lt;b&gt;&amp;") && !svg.contains("<b>"));
        assert!(svg.contains(r#"class="target""#));
    }
}
