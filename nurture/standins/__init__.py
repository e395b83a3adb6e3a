"""Local stand-ins for SendGrid and Salesforce, driven by the real client libraries."""
