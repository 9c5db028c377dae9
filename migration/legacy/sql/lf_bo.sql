-- Legacy back-office database fed by the OLD ETL: progress tracked by source IDs and a
-- minute-grain time dimension joined through ref_time_id.
CREATE DATABASE IF NOT EXISTS lf_bo DEFAULT CHARACTER SET latin1;

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
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  source_id      BIGINT UNSIGNED NOT NULL,
  uid            CHAR(16) NOT NULL,
  ref_time_id    INT UNSIGNED NOT NULL,
  customer_id    INT UNSIGNED NOT NULL,
  product        VARCHAR(10) NOT NULL,
  status         VARCHAR(10) NOT NULL,
  premium_cents  INT NULL,
  PRIMARY KEY (id),
  KEY ix_bo_quote_source (source_id),
  KEY ix_bo_quote_ref_time (ref_time_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS lf_bo.bo_offer (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  source_id    BIGINT UNSIGNED NOT NULL,
  uid          CHAR(16) NOT NULL,
  ref_time_id  INT UNSIGNED NOT NULL,
  quote_id     BIGINT UNSIGNED NOT NULL,
  insurer      VARCHAR(40) NOT NULL,
  price_cents  INT NULL,
  PRIMARY KEY (id),
  KEY ix_bo_offer_source (source_id),
  KEY ix_bo_offer_ref_time (ref_time_id)
) ENGINE=InnoDB
