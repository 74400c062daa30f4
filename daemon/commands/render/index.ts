// weftctl's presentation: tables for people, strict parsing of what weftd serves.
export { formatDuration, renderColumns } from './columns.js';
export { formatExpiresIn, leaseToJson, renderLeaseTable, sortLeases } from './lease-table.js';
export { parseStatusDoc, StatusDocumentError } from './status-doc.js';
export { renderStatusTable } from './status-table.js';
