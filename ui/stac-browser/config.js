// STAC Browser's configuration for stacflow, read at build time (build.sh puts it in place of the
// package's own config.js, which it extends). The catalog is this service's /stac on whatever host
// serves the page, so one build works anywhere; a deployment under a path prefix keeps that prefix.
const original = require('./config.defaults.js');

module.exports = Object.assign({}, original, {
    catalogUrl: () => window.location.origin + window.location.pathname.split('/browser/')[0] + '/stac',
    catalogTitle: "stacflow",
    allowExternalAccess: true,
    historyMode: "history",
    pathPrefix: "/browser/",
    // Only the locales STAC Browser ships complete; the browser's language picks among them.
    supportedLocales: ["en", "de", "es", "fr", "it", "pt"],
});
