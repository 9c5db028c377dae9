-- Legacy runtime database (MySQL 5.x era): what the web app writes.
-- Every row: auto-increment id, public uid, created_ts / updated_ts in epoch milliseconds.
-- Legacy dirt is allowed here on purpose: latin1 names, raw bytes for the city, nullable
-- columns the new schema forbids, zero dates (the legacy server runs without strict mode).
CREATE DATABASE IF NOT EXISTS lf_runtime DEFAULT CHARACTER SET latin1;

CREATE TABLE IF NOT EXISTS lf_runtime.customer (
  id          INT UNSIGNED NOT NULL AUTO_INCREMENT,
  uid         CHAR(16) NOT NULL,
  email       VARCHAR(190) NOT NULL,
  full_name   VARCHAR(120) CHARACTER SET latin1 NULL,
  city        VARBINARY(80) NULL,
  birth_date  DATE NULL,
  created_ts  BIGINT NOT NULL,
  updated_ts  BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_customer_uid (uid),
  KEY ix_customer_updated (updated_ts, id)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;

CREATE TABLE IF NOT EXISTS lf_runtime.quote (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  uid            CHAR(16) NOT NULL,
  customer_id    INT UNSIGNED NOT NULL,
  product        ENUM('car','health','home','bike','loan') NOT NULL,
  status         ENUM('draft','priced','chosen','expired') NOT NULL DEFAULT 'draft',
  premium_cents  INT NULL,
  start_date     DATE NULL,
  created_ts     BIGINT NOT NULL,
  updated_ts     BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_quote_uid (uid),
  KEY ix_quote_customer (customer_id),
  KEY ix_quote_updated (updated_ts, id)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;

CREATE TABLE IF NOT EXISTS lf_runtime.offer (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  uid          CHAR(16) NOT NULL,
  quote_id     BIGINT UNSIGNED NOT NULL,
  insurer      VARCHAR(40) NOT NULL,
  price_cents  INT NULL,
  rank_no      TINYINT UNSIGNED NOT NULL,
  created_ts   BIGINT NOT NULL,
  updated_ts   BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_offer_uid (uid),
  KEY ix_offer_quote (quote_id),
  KEY ix_offer_updated (updated_ts, id)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
