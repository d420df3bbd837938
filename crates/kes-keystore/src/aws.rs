//! AWS Secrets Manager key store. SKELETON: to be filled in (issue 4).
