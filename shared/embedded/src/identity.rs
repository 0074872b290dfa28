//! The identity ports on the same SQLite file.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use motcua_ports::identity::{
    Account, AccountKind, AccountStore, AttemptLimiter, AuditEntry, AuditLog, BusinessGrant,
    BusinessGrants, Challenge, ChallengeStore, IdentityPorts, RefreshRecord, RefreshTokenStore,
    RefreshUse,
};
use motcua_ports::{StoreError, StoreResult};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use crate::{EmbeddedStore, from_json, map_sql, to_json};

impl EmbeddedStore {
    /// The identity ports, all served by this store.
    pub fn identity_ports(&self) -> IdentityPorts {
        IdentityPorts {
            accounts: Arc::new(self.clone()),
            revoked: Arc::new(self.clone()),
            audit: Arc::new(self.clone()),
            attempts: Arc::new(self.clone()),
            refresh: Arc::new(self.clone()),
            challenges: Arc::new(self.clone()),
            grants: Arc::new(self.clone()),
        }
    }

    async fn account_where(
        &self,
        sql: &'static str,
        key: Vec<String>,
    ) -> StoreResult<Option<Account>> {
        let c = self.reader();
        let body: Option<String> = c
            .prepare_cached(sql)
            .and_then(|mut st| {
                st.query_row(rusqlite::params_from_iter(key.iter()), |r| r.get(0))
                    .optional()
            })
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn erase(&self, a: &Account) -> StoreResult<()> {
        self.delete_where("DELETE FROM accounts WHERE id = ?1", a.id.to_string())
            .await
    }

    async fn create_if_absent(&self, a: &Account) -> StoreResult<(Account, bool)> {
        let (id, kind, hash, version, body) = (
            a.id.to_string(),
            a.kind.as_str(),
            a.id_hash.clone(),
            a.version as i64,
            to_json(a)?,
        );
        let stored: (String, bool) = self
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "INSERT INTO accounts (id, kind, id_hash, version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (kind, id_hash) DO NOTHING",
                    )
                    .and_then(|mut st| st.execute(params![id, kind, hash, version, body]))
                    .map_err(map_sql)?;
                let existing: String = c
                    .prepare_cached("SELECT body FROM accounts WHERE kind = ?1 AND id_hash = ?2")
                    .and_then(|mut st| st.query_row(params![kind, hash], |r| r.get(0)))
                    .map_err(map_sql)?;
                Ok((existing, n == 1))
            })
            .await?;
        Ok((from_json(&stored.0)?, stored.1))
    }

    async fn get(&self, id: Uuid) -> StoreResult<Option<Account>> {
        self.account_where(
            "SELECT body FROM accounts WHERE id = ?1",
            vec![id.to_string()],
        )
        .await
    }

    async fn get_by_id_hash(
        &self,
        kind: AccountKind,
        id_hash: &str,
    ) -> StoreResult<Option<Account>> {
        self.account_where(
            "SELECT body FROM accounts WHERE kind = ?1 AND id_hash = ?2",
            vec![kind.as_str().to_owned(), id_hash.to_owned()],
        )
        .await
    }

    async fn update(&self, a: &Account) -> StoreResult<()> {
        let (id, version, body) = (a.id.to_string(), a.version as i64, to_json(a)?);
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE accounts SET version = ?2, body = ?3 WHERE id = ?1 AND version = ?4",
                )
                .and_then(|mut st| st.execute(params![id, version, body, version - 1]))
                .map_err(map_sql)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }
}

impl EmbeddedStore {
    async fn delete_where(&self, sql: &'static str, key: String) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached(sql)
                .and_then(|mut st| st.execute([key]))
                .map_err(map_sql)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AuditLog for EmbeddedStore {
    async fn append(&self, e: &AuditEntry) -> StoreResult<()> {
        let (id, hash, at, body) = (
            e.id.to_string(),
            e.id_hash.clone(),
            e.at.as_microsecond(),
            to_json(e)?,
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit (id, id_hash, at_us, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![id, hash, at, body]))
            .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn by_id_hash(&self, id_hash: &str, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT body FROM audit WHERE id_hash = ?1 ORDER BY at_us DESC, id DESC LIMIT ?2",
            )
            .map_err(map_sql)?;
        let rows = st
            .query_map(params![id_hash, limit], |r| r.get::<_, String>(0))
            .map_err(map_sql)?;
        rows.map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
            .collect()
    }
}

#[async_trait]
impl AttemptLimiter for EmbeddedStore {
    async fn reserve(&self, key: &str, at: Timestamp) -> StoreResult<String> {
        let (key, at) = (key.to_owned(), at.as_microsecond());
        self.write(move |c| {
            let rowid: i64 = c
                .prepare_cached("INSERT INTO attempts (key, at_us) VALUES (?1, ?2) RETURNING rowid")
                .and_then(|mut st| st.query_row(params![key, at], |r| r.get(0)))
                .map_err(map_sql)?;
            // Attempts older than any window (a day) are swept as new ones come (every
            // 64th), as the DynamoDB items expire by TTL.
            if rowid % 64 == 0 {
                c.prepare_cached("DELETE FROM attempts WHERE at_us < ?1")
                    .and_then(|mut st| st.execute([at - 86_400_000_000]))
                    .map_err(map_sql)?;
            }
            Ok(rowid.to_string())
        })
        .await
    }

    async fn release(&self, key: &str, handle: &str) -> StoreResult<()> {
        let Ok(rowid) = handle.parse::<i64>() else {
            return Ok(());
        };
        let key = key.to_owned();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM attempts WHERE rowid = ?1 AND key = ?2")
                .and_then(|mut st| st.execute(params![rowid, key]))
                .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn failures_since(
        &self,
        key: &str,
        since: Timestamp,
        max: usize,
    ) -> StoreResult<Vec<Timestamp>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT at_us FROM attempts WHERE key = ?1 AND at_us >= ?2
                 ORDER BY at_us DESC LIMIT ?3",
            )
            .map_err(map_sql)?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = st
            .query_map(params![key, since.as_microsecond(), max], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(map_sql)?;
        let mut out = rows
            .map(|r| {
                r.map_err(map_sql).and_then(|us| {
                    Timestamp::from_microsecond(us).map_err(|e| StoreError::Backend(e.to_string()))
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    async fn clear(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM attempts WHERE key = ?1")
                .and_then(|mut st| st.execute([key]))
                .map_err(map_sql)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl RefreshTokenStore for EmbeddedStore {
    async fn put(&self, r: &RefreshRecord) -> StoreResult<()> {
        let (hash, body) = (r.token_hash.clone(), to_json(r)?);
        self.write(move |c| {
            c.prepare_cached("INSERT INTO refresh_tokens (token_hash, body) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![hash, body]))
                .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn spend(&self, token_hash: &str, now: Timestamp) -> StoreResult<RefreshUse> {
        let hash = token_hash.to_owned();
        // `spent` holds when (Unix seconds; 0 unspent, 1 for rows of older versions).
        let at = now.as_second().max(2);
        let (row, changed): (Option<(String, i64)>, usize) = self
            .write(move |c| {
                let changed = c
                    .prepare_cached(
                        "UPDATE refresh_tokens SET spent = ?2 WHERE token_hash = ?1 AND spent = 0",
                    )
                    .and_then(|mut st| st.execute(params![&hash, at]))
                    .map_err(map_sql)?;
                let row: Option<(String, i64)> = c
                    .prepare_cached("SELECT body, spent FROM refresh_tokens WHERE token_hash = ?1")
                    .and_then(|mut st| {
                        st.query_row([&hash], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(map_sql)?;
                Ok((row, changed))
            })
            .await?;
        Ok(match row {
            None => RefreshUse::NotFound,
            Some((b, _)) if changed == 1 => RefreshUse::Fresh(from_json(&b)?),
            Some((b, spent)) => RefreshUse::Reused {
                record: from_json(&b)?,
                spent_at: Timestamp::from_second(spent).unwrap_or(Timestamp::UNIX_EPOCH),
            },
        })
    }

    async fn spent(&self, token_hash: &str) -> StoreResult<Option<bool>> {
        let c = self.reader();
        let spent: Option<i64> = c
            .prepare_cached("SELECT spent FROM refresh_tokens WHERE token_hash = ?1")
            .and_then(|mut st| st.query_row([token_hash], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        Ok(spent.map(|s| s != 0))
    }

    async fn claim_retry(&self, token_hash: &str) -> StoreResult<bool> {
        let hash = token_hash.to_owned();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE refresh_tokens SET retried = 1
                     WHERE token_hash = ?1 AND spent != 0 AND retried = 0",
                )
                .and_then(|mut st| st.execute([&hash]))
                .map_err(map_sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn revoke_family(&self, family: Uuid) -> StoreResult<()> {
        let family = family.to_string();
        self.write(move |c| {
            c.prepare_cached("INSERT OR IGNORE INTO revoked_families (family) VALUES (?1)")
                .and_then(|mut st| st.execute([family]))
                .map_err(map_sql)?;
            Ok(())
        })
        .await
    }

    async fn family_revoked(&self, family: Uuid) -> StoreResult<bool> {
        let c = self.reader();
        let found: Option<i64> = c
            .prepare_cached("SELECT 1 FROM revoked_families WHERE family = ?1")
            .and_then(|mut st| st.query_row([family.to_string()], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        Ok(found.is_some())
    }
}

#[async_trait]
impl ChallengeStore for EmbeddedStore {
    async fn put(&self, ch: &Challenge) -> StoreResult<()> {
        let (id, exp, body) = (ch.id.clone(), ch.expires.as_second(), to_json(ch)?);
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO challenges (id, expires_s, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![id, exp, body]))
                .map_err(map_sql)?;
            // Challenges expired a day ago are swept as new ones come (every 64th).
            if c.last_insert_rowid() % 64 == 0 {
                c.prepare_cached("DELETE FROM challenges WHERE expires_s < ?1")
                    .and_then(|mut st| st.execute([exp - 86_400]))
                    .map_err(map_sql)?;
            }
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::Duplicate)
            }
        })
        .await
    }

    async fn get(&self, id: &str, now: Timestamp) -> StoreResult<Option<Challenge>> {
        let c = self.reader();
        let body: Option<String> = c
            .prepare_cached("SELECT body FROM challenges WHERE id = ?1 AND expires_s > ?2")
            .and_then(|mut st| {
                st.query_row(params![id, now.as_second()], |r| r.get(0))
                    .optional()
            })
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn consume(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let (id, now) = (id.to_owned(), now.as_second());
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM challenges WHERE id = ?1 AND expires_s > ?2")
                .and_then(|mut st| st.execute(params![id, now]))
                .map_err(map_sql)?;
            Ok(n == 1)
        })
        .await
    }
}

#[async_trait]
impl BusinessGrants for EmbeddedStore {
    async fn grant(&self, g: &BusinessGrant) -> StoreResult<(BusinessGrant, bool)> {
        let (business, member, id, at, body) = (
            g.business_id.to_string(),
            g.member_hash.clone(),
            g.id.to_string(),
            g.granted_at.as_microsecond(),
            to_json(g)?,
        );
        let (stored, n): (String, usize) = self
            .write(move |c| {
                let n = c
                    .prepare_cached(
                        "INSERT INTO business_grants (business_id, member_hash, id, at_us, body)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (business_id, member_hash) DO NOTHING",
                    )
                    .and_then(|mut st| st.execute(params![business, member, id, at, body]))
                    .map_err(map_sql)?;
                let stored: String = c
                    .prepare_cached(
                        "SELECT body FROM business_grants WHERE business_id = ?1 AND member_hash = ?2",
                    )
                    .and_then(|mut st| st.query_row(params![business, member], |r| r.get(0)))
                    .map_err(map_sql)?;
                Ok((stored, n))
            })
            .await?;
        Ok((from_json(&stored)?, n == 1))
    }

    async fn find(
        &self,
        business_id: Uuid,
        member_hash: &str,
    ) -> StoreResult<Option<BusinessGrant>> {
        let c = self.reader();
        let body: Option<String> = c
            .prepare_cached(
                "SELECT body FROM business_grants WHERE business_id = ?1 AND member_hash = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![business_id.to_string(), member_hash], |r| r.get(0))
                    .optional()
            })
            .map_err(map_sql)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn list(&self, business_id: Uuid) -> StoreResult<Vec<BusinessGrant>> {
        let c = self.reader();
        let mut st = c
            .prepare_cached(
                "SELECT body FROM business_grants WHERE business_id = ?1 ORDER BY at_us, id",
            )
            .map_err(map_sql)?;
        let rows = st
            .query_map([business_id.to_string()], |r| r.get::<_, String>(0))
            .map_err(map_sql)?;
        rows.map(|r| r.map_err(map_sql).and_then(|b| from_json(&b)))
            .collect()
    }

    async fn revoke(&self, business_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let (business, id) = (business_id.to_string(), id.to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM business_grants WHERE business_id = ?1 AND id = ?2")
                .and_then(|mut st| st.execute(params![business, id]))
                .map_err(map_sql)?;
            Ok(n == 1)
        })
        .await
    }
}
