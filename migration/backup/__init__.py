"""Backups whose restore is proven equal to what was backed up, by furet's chunk checksums
(issue 13): :mod:`~migration.backup.legacy` dumps the legacy master and records the
checksums at the dump's point, :mod:`~migration.backup.restore` loads the dump into a
scratch server (:mod:`~migration.backup.scratch`) and compares it with them
(:mod:`~migration.backup.checksums`); :mod:`~migration.backup.galera` streams a Galera
node's mariadb-backup with the checksums taken under furet's flow locks, and the restore
test extracts and prepares that archive (:mod:`~migration.backup.mariabackup`);
:mod:`~migration.backup.manifest` is the directory's table of contents."""
