//! Syntax rules for names, labels, CIDRs, ports, FQDNs, HTTP and ICMP values (pure functions).
