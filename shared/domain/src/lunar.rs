//! Vietnamese lunar calendar (âm lịch), computed astronomically for UTC+7.
//!
//! The method is Hồ Ngọc Đức's public algorithm (new moons after Jean Meeus, "Astronomical
//! Algorithms"; months counted from the one containing the winter solstice). It is what
//! Vietnamese calendars print, and it differs from the Chinese calendar in the years where
//! UTC+7 and UTC+8 put a new moon on different days. Used for Tết and Hùng Kings day.

use std::f64::consts::PI;

use jiff::civil::Date;

const TZ: f64 = 7.0;

fn int(x: f64) -> i64 {
    x.floor() as i64
}

fn jd_from_date(d: Date) -> i64 {
    let (dd, mm, yy) = (
        i64::from(d.day()),
        i64::from(d.month()),
        i64::from(d.year()),
    );
    let a = (14 - mm) / 12;
    let y = yy + 4800 - a;
    let m = mm + 12 * a - 3;
    dd + (153 * m + 2) / 5 + 365 * y + y / 4 - y / 100 + y / 400 - 32045
}

fn jd_to_date(jd: i64) -> Option<Date> {
    let a = jd + 32044;
    let b = (4 * a + 3) / 146097;
    let c = a - (b * 146097) / 4;
    let d = (4 * c + 3) / 1461;
    let e = c - (1461 * d) / 4;
    let m = (5 * e + 2) / 153;
    let day = e - (153 * m + 2) / 5 + 1;
    let month = m + 3 - 12 * (m / 10);
    let year = b * 100 + d - 4800 + m / 10;
    Date::new(year as i16, month as i8, day as i8).ok()
}

/// Julian day of the k-th new moon after 1900-01-01.
fn new_moon(k: i64) -> f64 {
    let k = k as f64;
    let t = k / 1236.85;
    let t2 = t * t;
    let t3 = t2 * t;
    let dr = PI / 180.0;
    let mut jd1 = 2415020.75933 + 29.53058868 * k + 0.0001178 * t2 - 0.000000155 * t3;
    jd1 += 0.00033 * ((166.56 + 132.87 * t - 0.009173 * t2) * dr).sin();
    let m = 359.2242 + 29.10535608 * k - 0.0000333 * t2 - 0.00000347 * t3;
    let mpr = 306.0253 + 385.81691806 * k + 0.0107306 * t2 + 0.00001236 * t3;
    let f = 21.2964 + 390.67050646 * k - 0.0016528 * t2 - 0.00000239 * t3;
    let mut c1 = (0.1734 - 0.000393 * t) * (m * dr).sin() + 0.0021 * (2.0 * dr * m).sin();
    c1 = c1 - 0.4068 * (mpr * dr).sin() + 0.0161 * (dr * 2.0 * mpr).sin();
    c1 -= 0.0004 * (dr * 3.0 * mpr).sin();
    c1 = c1 + 0.0104 * (dr * 2.0 * f).sin() - 0.0051 * (dr * (m + mpr)).sin();
    c1 = c1 - 0.0074 * (dr * (m - mpr)).sin() + 0.0004 * (dr * (2.0 * f + m)).sin();
    c1 = c1 - 0.0004 * (dr * (2.0 * f - m)).sin() - 0.0006 * (dr * (2.0 * f + mpr)).sin();
    c1 = c1 + 0.0010 * (dr * (2.0 * f - mpr)).sin() + 0.0005 * (dr * (2.0 * mpr + m)).sin();
    let deltat = if t < -11.0 {
        0.001 + 0.000839 * t + 0.0002261 * t2 - 0.00000845 * t3 - 0.000000081 * t * t3
    } else {
        -0.000278 + 0.000265 * t + 0.000262 * t2
    };
    jd1 + c1 - deltat
}

fn sun_longitude(jdn: f64) -> f64 {
    let t = (jdn - 2451545.0) / 36525.0;
    let t2 = t * t;
    let dr = PI / 180.0;
    let m = 357.52910 + 35999.05030 * t - 0.0001559 * t2 - 0.00000048 * t * t2;
    let l0 = 280.46645 + 36000.76983 * t + 0.0003032 * t2;
    let mut dl = (1.914600 - 0.004817 * t - 0.000014 * t2) * (dr * m).sin();
    dl += (0.019993 - 0.000101 * t) * (dr * 2.0 * m).sin() + 0.000290 * (dr * 3.0 * m).sin();
    let mut l = (l0 + dl) * dr;
    l -= PI * 2.0 * (int(l / (PI * 2.0)) as f64);
    l
}

/// Sun longitude sector (0..11, 30° each) at the start of local day `day_number`.
fn sun_sector(day_number: i64) -> i64 {
    int(sun_longitude(day_number as f64 - 0.5 - TZ / 24.0) / PI * 6.0)
}

fn new_moon_day(k: i64) -> i64 {
    int(new_moon(k) + 0.5 + TZ / 24.0)
}

/// First day of the 11th lunar month (the one containing the winter solstice) of year `yy`.
fn lunar_month_11(yy: i16) -> i64 {
    let off = jd_from_date(Date::new(yy, 12, 31).expect("valid")) - 2415021;
    let k = int(off as f64 / 29.530588853);
    let nm = new_moon_day(k);
    if sun_sector(nm) >= 9 {
        new_moon_day(k - 1)
    } else {
        nm
    }
}

fn leap_month_offset(a11: i64) -> i64 {
    let k = int((a11 as f64 - 2415021.076998695) / 29.530588853 + 0.5);
    let mut i = 1;
    let mut arc = sun_sector(new_moon_day(k + i));
    loop {
        let last = arc;
        i += 1;
        arc = sun_sector(new_moon_day(k + i));
        if arc == last || i >= 14 {
            break;
        }
    }
    i - 1
}

/// The solar date of lunar day `day` of (non-leap) lunar month `month` of lunar year `year`.
pub fn lunar_to_solar(day: u8, month: u8, year: i16) -> Option<Date> {
    if !(1..=30).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    let month = i64::from(month);
    let (a11, b11) = if month < 11 {
        (lunar_month_11(year - 1), lunar_month_11(year))
    } else {
        (lunar_month_11(year), lunar_month_11(year + 1))
    };
    let k = int(0.5 + (a11 as f64 - 2415021.076998695) / 29.530588853);
    let mut off = month - 11;
    if off < 0 {
        off += 12;
    }
    if b11 - a11 > 365 {
        let leap_off = leap_month_offset(a11);
        if off >= leap_off {
            off += 1;
        }
    }
    let month_start = new_moon_day(k + off);
    jd_to_date(month_start + i64::from(day) - 1)
}

/// Lunar new year's day (mùng 1 Tết) falling in solar year `year`.
pub fn tet(year: i16) -> Date {
    lunar_to_solar(1, 1, year).expect("lunar new year exists every year")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn tet_matches_domain_facts() {
        // DOMAIN.md: lunar new year 2025-01-29, 2026-02-17, 2027-02-06.
        assert_eq!(tet(2025), date(2025, 1, 29));
        assert_eq!(tet(2026), date(2026, 2, 17));
        assert_eq!(tet(2027), date(2027, 2, 6));
        // Published Vietnamese calendars.
        assert_eq!(tet(2024), date(2024, 2, 10));
        assert_eq!(tet(2028), date(2028, 1, 26));
        assert_eq!(tet(2029), date(2029, 2, 13));
        // 2030: the new moon falls at 23:07 in Vietnam (UTC+7) on Feb 2 but after midnight in
        // China (UTC+8): Vietnamese Tết is Feb 2, one day before the Chinese new year.
        assert_eq!(tet(2030), date(2030, 2, 2));
    }

    #[test]
    fn hung_kings_day() {
        // 10th day of the 3rd lunar month.
        assert_eq!(lunar_to_solar(10, 3, 2024), Some(date(2024, 4, 18)));
        assert_eq!(lunar_to_solar(10, 3, 2025), Some(date(2025, 4, 7)));
        assert_eq!(lunar_to_solar(10, 3, 2026), Some(date(2026, 4, 26)));
    }

    #[test]
    fn julian_day_round_trip() {
        let d = date(2026, 11, 29);
        assert_eq!(jd_to_date(jd_from_date(d)), Some(d));
    }
}
