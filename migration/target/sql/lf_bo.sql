-- Target back office on Galera, fed by the new ETL: keyed by the public uid, with the
-- source's millisecond version in `ts` (BI queries read `ts` directly).
-- ref_time_id and bo_ref_time are deprecated: only `furet round --strategy id` (the old
-- ETL, kept to prove that it loses rows) fills them.
CREATE DATABASE IF NOT EXISTS lf_bo DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS lf_bo.bo_ref_time (
  id      INT UNSIGNED NOT NULL AUTO_INCREMENT,
  day     TINYINT UNSIGNED NOT NULL,
  month   TINYINT UNSIGNED NOT NULL,
  year    SMALLINT UNSIGNED NOT NULL,
  hour    TINYINT UNSIGNED NOT NULL,
  minute  TINYINT UNSIGNED NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_ref_time (year, month, day, hour, minute)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS lf_bo.bo_quote (
  uid            CHAR(16) NOT NULL,
  source_id      BIGINT UNSIGNED NOT NULL,
  customer_id    INT UNSIGNED NOT NULL,
  product        VARCHAR(10) NOT NULL,
  status         VARCHAR(10) NOT NULL,
  premium_cents  INT NULL,
  ts             BIGINT NOT NULL,
  ref_time_id    INT UNSIGNED NULL,
  PRIMARY KEY (uid),
  KEY ix_bo_quote_ts (ts),
  KEY ix_bo_quote_source (source_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS lf_bo.bo_offer (
  uid          CHAR(16) NOT NULL,
  source_id    BIGINT UNSIGNED NOT NULL,
  quote_id     BIGINT UNSIGNED NOT NULL,
  insurer      VARCHAR(40) NOT NULL,
  price_cents  INT NOT NULL,
  ts           BIGINT NOT NULL,
  ref_time_id  INT UNSIGNED NULL,
  PRIMARY KEY (uid),
  KEY ix_bo_offer_ts (ts),
  KEY ix_bo_offer_source (source_id)
) ENGINE=InnoDB
