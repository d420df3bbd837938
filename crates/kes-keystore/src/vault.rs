//! HashiCorp Vault / OpenBao K/V key store. SKELETON: to be filled in (issue 7).
