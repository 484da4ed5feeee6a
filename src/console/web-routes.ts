/**
 * The web console's pages, by path. The server answers each with the single-page app's
 * index.html (so a bookmarked or reloaded deep link works); the app's router knows the same
 * list (web/src imports this file). Any other path gets the ordinary JSON 404.
 */
export const WEB_PAGES = {
  '/': 'Cluster',
  '/sign-in': 'Sign in',
  '/cluster': 'Cluster',
  '/configuration': 'Configuration',
  '/apis': 'APIs',
  '/api-keys': 'API keys',
  '/schedules': 'Schedules',
  '/replica': 'Replica',
} as const;

export type WebPagePath = keyof typeof WEB_PAGES;

/** Where the built assets are served from; their names carry a content hash. */
export const WEB_ASSETS_PREFIX = '/assets/';
