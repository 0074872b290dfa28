// The KPI dashboard: calls the report API (GET /v1/reports/kpi and its trend charts) with
// the leader's token and shows each indicator against its target, per agency and month.
// No build step, no library: the charts are SVG drawn by the API. Vietnamese by default;
// `?lang=en` for English. The token comes in the URL fragment (never sent to a server),
// is kept in this tab only, and the fragment is cleared.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const lang = params.get("lang") === "en" ? "en" : "vi";
  const api = (document.querySelector('meta[name="motcua-api"]')?.content || "").replace(/\/$/, "");
  const T = {
    vi: {
      title: "Chỉ số phục vụ người dân, doanh nghiệp",
      subtitle: "Quyết định 766/QĐ-TTg — số liệu từ hệ thống một cửa điện tử",
      agency: "Cơ quan", from: "Từ tháng", to: "Đến tháng", show: "Xem", province: "Toàn tỉnh",
      trends: "Xu hướng theo tháng", agencies: "Theo cơ quan", months: "Theo tháng",
      score: "Điểm", target: "Mục tiêu", met: "Đạt", unmet: "Chưa đạt", none: "Chưa có số liệu",
      asOf: "Hồ sơ đang giải quyết được tính quá hạn đến ngày", month: "Tháng", name: "Cơ quan",
      signin: "Cần đăng nhập: mở trang này với mã truy cập của lãnh đạo hoặc quản trị (…/dashboard#token=…), hoặc dán mã vào đây.",
      failed: "Không tải được báo cáo", signout: "Đăng xuất",
    },
    en: {
      title: "Service to citizens and businesses: indicators",
      subtitle: "Decision 766/QĐ-TTg — figures from the one-stop system",
      agency: "Agency", from: "From", to: "To", show: "Show", province: "Province",
      trends: "Month by month", agencies: "By agency", months: "By month",
      score: "Score", target: "Target", met: "Met", unmet: "Not met", none: "No figures yet",
      asOf: "Open dossiers judged overdue as of", month: "Month", name: "Agency",
      signin: "Sign-in needed: open this page with a leader's or admin's token (…/dashboard#token=…), or paste it here.",
      failed: "The report could not be loaded", signout: "Sign out",
    },
  }[lang];
  const $ = (id) => document.getElementById(id);
  const percent = new Intl.NumberFormat(lang === "vi" ? "vi-VN" : "en-GB", {
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1,
  });
  const number = new Intl.NumberFormat(lang === "vi" ? "vi-VN" : "en-GB", { maximumFractionDigits: 2 });
  const pct = (v) => (v === null || v === undefined ? "—" : percent.format(v));
  const TRENDS = ["online_filing", "online_payment", "on_time", "digitised_dossiers"];

  document.documentElement.lang = lang;
  document.title = T.title;
  for (const [id, key] of [["title", "title"], ["subtitle", "subtitle"], ["l-agency", "agency"],
    ["l-from", "from"], ["l-to", "to"], ["l-show", "show"], ["province", "province"],
    ["l-trends", "trends"], ["l-agencies", "agencies"], ["l-months", "months"], ["l-signin", "signin"],
    ["signout", "signout"]]) {
    $(id).textContent = T[key];
  }

  // The token: from the fragment once, then from this tab's storage.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem("motcua_dashboard_token", fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = () => sessionStorage.getItem("motcua_dashboard_token");

  const now = new Date();
  const ym = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
  $("from").value = params.get("from") || `${now.getFullYear()}-01`;
  $("to").value = params.get("to") || ym(now);
  if (params.get("agency")) {
    const o = document.createElement("option");
    o.value = params.get("agency");
    o.textContent = params.get("agency");
    $("agency").append(o);
    $("agency").value = params.get("agency");
  }

  const query = () => {
    const q = new URLSearchParams({ from: $("from").value, to: $("to").value });
    if ($("agency").value) q.set("agency", $("agency").value);
    return q;
  };
  const call = async (path, accept) => {
    const r = await fetch(api + path, {
      headers: { Authorization: `Bearer ${token()}`, "Accept-Language": lang, Accept: accept },
    });
    if (r.status === 401) {
      // An expired or revoked token is forgotten: the page asks for a new one.
      sessionStorage.removeItem("motcua_dashboard_token");
    }
    if (!r.ok) {
      let why = `${r.status}`;
      try { why = (await r.json()).title || why; } catch (_) { /* not JSON */ }
      throw new Error(why);
    }
    return r;
  };

  const field = (name, text, value) => {
    const s = document.createElement("span");
    s.dataset.field = name;
    if (value !== undefined && value !== null) s.dataset.value = String(value);
    s.textContent = text;
    return s;
  };
  const line = (...parts) => {
    const p = document.createElement("p");
    for (const x of parts) p.append(x);
    return p;
  };

  function cards(indicators) {
    const box = $("indicators");
    box.replaceChildren();
    for (const i of indicators) {
      const a = document.createElement("article");
      a.className = "kpi " + (i.met === true ? "met" : i.met === false ? "unmet" : "");
      a.dataset.indicator = i.indicator;
      const h = document.createElement("h3");
      h.textContent = i.name;
      const v = line(field("value", pct(i.value), i.value === null ? "" : i.value.toFixed(4)));
      v.className = "value";
      a.append(h, v,
        line(field("numerator", String(i.numerator)), " / ", field("denominator", String(i.denominator))),
        line(`${T.score}: `, field("score", i.score === null ? "—" : number.format(i.score), i.score),
          " / ", field("max_score", number.format(i.max_score))),
        line(`${T.target}: `, field("target", pct(i.target), i.target), " — ",
          field("met", i.met === null ? T.none : i.met ? T.met : T.unmet)));
      box.append(a);
    }
  }

  function table(id, first, rows) {
    const t = $(id);
    const head = document.createElement("tr");
    const th0 = document.createElement("th");
    th0.textContent = first;
    head.append(th0);
    for (const i of rows[0]?.indicators || []) {
      const th = document.createElement("th");
      th.textContent = i.name;
      head.append(th);
    }
    t.tHead.replaceChildren(head);
    const body = t.tBodies[0];
    body.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.row = r.key;
      const td0 = document.createElement("td");
      td0.textContent = r.label;
      tr.append(td0);
      for (const i of r.indicators) {
        const td = document.createElement("td");
        td.dataset.indicator = i.indicator;
        td.dataset.value = i.value === null ? "" : i.value.toFixed(4);
        td.className = i.met === true ? "met" : i.met === false ? "unmet" : "";
        td.textContent = pct(i.value);
        tr.append(td);
      }
      body.append(tr);
    }
  }

  // What a chart may hold: the elements and attributes the API draws with, nothing that
  // runs or loads (no handlers, no links, no foreign content).
  const ELEMENTS = new Set(["svg", "title", "text", "line", "circle", "polyline"]);
  const ATTRIBUTES = new Set(["xmlns", "viewBox", "width", "height", "role", "aria-label",
    "font-family", "font-size", "font-weight", "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r",
    "fill", "stroke", "stroke-width", "stroke-dasharray", "points", "text-anchor", "class",
    "data-indicator", "data-month", "data-value"]);
  function clean(svg) {
    if (svg.nodeName !== "svg") return null;
    for (const el of [svg, ...svg.querySelectorAll("*")]) {
      if (!ELEMENTS.has(el.localName) || el.namespaceURI !== "http://www.w3.org/2000/svg") {
        el.remove();
        continue;
      }
      for (const a of [...el.attributes]) {
        if (!ATTRIBUTES.has(a.name)) el.removeAttribute(a.name);
      }
    }
    return svg;
  }
  // For the browser test of the filter.
  window.motcuaDashboardClean = (text) =>
    clean(new DOMParser().parseFromString(text, "image/svg+xml").documentElement)?.outerHTML ?? null;

  // The CSV through fetch (a link would carry no token; a token in a URL would be logged).
  async function downloadCsv() {
    try {
      const r = await call(`/v1/reports/kpi.csv?${query()}`, "text/csv");
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = `kpi-${$("agency").value || "province"}-${$("from").value}-${$("to").value}.csv`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      $("error").textContent = `${T.failed}: ${e.message}`;
    }
  }

  async function trends(q) {
    const box = $("trends");
    box.replaceChildren();
    for (const name of TRENDS) {
      const qq = new URLSearchParams(q);
      qq.set("indicator", name);
      const r = await call(`/v1/reports/kpi/trend.svg?${qq}`, "image/svg+xml");
      const doc = new DOMParser().parseFromString(await r.text(), "image/svg+xml");
      const svg = clean(doc.documentElement);
      if (svg) box.append(document.importNode(svg, true));
    }
  }

  async function load() {
    $("error").textContent = "";
    document.body.dataset.ready = "";
    if (!token()) {
      $("signin").hidden = false;
      return;
    }
    $("signin").hidden = true;
    const q = query();
    try {
      const r = await (await call(`/v1/reports/kpi?${q}`, "application/json")).json();
      const sel = $("agency");
      if (sel.options.length <= 2) {
        for (const a of r.agencies) {
          if ([...sel.options].some((o) => o.value === a.agency)) continue;
          const o = document.createElement("option");
          o.value = a.agency;
          o.textContent = a.name ? `${a.name} (${a.agency})` : a.agency;
          sel.append(o);
        }
      }
      $("as-of").textContent = `${T.asOf} ${r.as_of}`;
      cards(r.indicators);
      table("by-agency", T.name, r.agencies.map((a) => ({ key: a.agency, label: a.name || a.agency, indicators: a.indicators })));
      table("by-month", T.month, r.months.map((m) => ({ key: m.month, label: m.month, indicators: m.indicators })));
      await trends(q);
      document.body.dataset.ready = "1";
    } catch (e) {
      $("error").textContent = `${T.failed}: ${e.message}`;
      document.body.dataset.ready = "error";
    }
  }

  $("controls").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("csv").addEventListener("click", downloadCsv);
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem("motcua_dashboard_token");
    location.reload();
  });
  $("use-token").addEventListener("click", () => {
    const t = $("token-input").value.trim();
    if (t) sessionStorage.setItem("motcua_dashboard_token", t);
    $("token-input").value = "";
    load();
  });
  load();
})();
