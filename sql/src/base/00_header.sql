-- complain if this script is sourced in psql rather than run by CREATE EXTENSION
\echo Use "CREATE EXTENSION pyrec" to load this file. \quit
