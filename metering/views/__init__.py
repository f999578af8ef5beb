"""The dashboard's pages of metering (htmx): customers (`customers`), the event debugger (`events`) and usage
(`usage`), with their forms, filters and charts. Views parse input, call one selector or service, and render."""
